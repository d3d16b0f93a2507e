"""Commands that run the service and its background passes: ``serve``, ``follow-up``,
``webhooks``."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

import click

from pipeline.cli.common import emit, json_option
from pipeline.config import Settings
from pipeline.errors import BadInput


@click.command("follow-up")
@click.option("--now", "now_text", help="Pretend it is this ISO date-time (for drills).")
@json_option
@click.pass_obj
def follow_up(settings: Settings, now_text: str | None, as_json: bool) -> None:
    """One pass of reminders, escalations and deemed consent."""
    from pipeline.documents.followup import follow_up as one_pass

    now = None
    if now_text:
        try:
            now = datetime.fromisoformat(now_text)
        except ValueError:
            raise BadInput(f"--now 应为 ISO 日期时间：{now_text!r}",
                           f"--now must be an ISO date-time: {now_text!r}") from None
        if now.tzinfo is None:
            now = now.replace(tzinfo=settings.zone)
    actions = one_pass(settings, now)
    if as_json:
        emit([asdict(action) for action in actions])
        return
    for action in actions:
        click.echo(f"{action.document}  {action.kind:<15} {action.party:<12} {action.field}"
                   f"  {', '.join(action.to)} {action.detail}")
    click.echo(f"{len(actions)} action(s)")


@click.command("webhooks")
@json_option
@click.pass_obj
def webhooks(settings: Settings, as_json: bool) -> None:
    """Deliver pending ledger events to the configured webhook URLs (one pass)."""
    from pipeline.outbound.webhooks import deliver_webhooks

    results = deliver_webhooks(settings)
    if as_json:
        emit([asdict(result) for result in results])
        return
    for result in results:
        click.echo(f"{result.url}  #{result.seq}  {'delivered' if result.delivered else 'failed'}"
                   f" ({result.status})")
    click.echo(f"{len(results)} attempt(s)")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_obj
def serve(settings: Settings, host: str, port: int) -> None:
    """Run the API and web pages."""
    import uvicorn

    from api.app import create_app
    from pipeline.outbound.webhooks import require_webhook_secret

    require_webhook_secret(settings)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


COMMANDS = (follow_up, webhooks, serve)
