"""Commands that run the service, its job consumers and its background passes: ``serve``,
``worker``, ``follow-up``, ``webhooks``."""

from __future__ import annotations

import os
from dataclasses import asdict, replace
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
@click.option("--with-worker/--without-worker", "with_worker", default=None,
              help="Run queued jobs and the periodic passes in this process too (default: "
                   "yes with the embedded database, no with PostgreSQL; "
                   "$COUNTERSIGN_SERVE_WORKER).")
@click.pass_obj
def serve(settings: Settings, host: str, port: int, with_worker: bool | None) -> None:
    """Run the API and web pages."""
    import uvicorn

    from api.app import create_app
    from pipeline.outbound.webhooks import require_webhook_secret

    if with_worker is not None:
        settings = replace(settings, serve_worker=with_worker)
    require_webhook_secret(settings)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")


@click.command()
@click.option("--concurrency", type=click.IntRange(1, 64), default=None,
              help="Jobs run at once (default: $COUNTERSIGN_WORKER_CONCURRENCY or 2).")
@click.pass_obj
def worker(settings: Settings, concurrency: int | None) -> None:
    """Run queued jobs (bulk, closing) and the periodic passes (follow-up, mail, webhooks,
    ledger anchor, stalled jobs) until SIGTERM or Ctrl-C; jobs still running then go back
    to the queue."""
    from pipeline.jobs.runner import run_worker
    from pipeline.outbound.webhooks import require_webhook_secret

    require_webhook_secret(settings)
    click.echo(f"工作进程已启动 / worker started (pid {os.getpid()})", err=True)
    released = run_worker(settings, concurrency)
    click.echo(f"工作进程已停止 / worker stopped; {len(released)} job(s) handed back",
               err=True)


COMMANDS = (follow_up, webhooks, serve, worker)
