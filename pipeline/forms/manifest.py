"""Template manifests: what a template's fields, roles, numbering and closure rules are.

A template is a folder in ``doc_templates/`` holding ``manifest.toml`` and the ``.docx`` it
names. Manifests are parsed once into frozen dataclasses; nothing else reads the TOML.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pipeline.errors import BadInput, ManifestError, UnknownTemplate
from pipeline.record.store import RESERVED_FOLDERS, check_archive_path

TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "doc_templates"
FIELD_TYPES = frozenset(
    {"text", "multiline", "date", "datetime", "enum", "list", "table", "object"}
)
DEFAULT_MAX_LENGTH = {"text": 200, "multiline": 20000, "list": 2000}


@dataclass(frozen=True)
class FieldSpec:
    """One form field. ``columns`` are the sub-fields of a ``table`` row or an ``object``."""

    name: str
    type: str
    required: bool
    label_zh: str
    label_en: str
    max_length: int | None = None
    max_items: int | None = None
    values: tuple[str, ...] = ()
    columns: tuple[FieldSpec, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.label_zh} ({self.label_en})"


@dataclass(frozen=True)
class RoleSpec:
    """A signing role. Roles with equal ``order`` form a parallel group; a role whose
    ``signers_from`` names a list (``attendees[].dept``) has one member per distinct value."""

    key: str
    order: int
    label_zh: str
    label_en: str
    signers_from: str
    signature_place: str
    deadline_hours: int | None
    deadline_working_days: int | None
    deemed_consent: bool
    # Fields a member of this role fills before it may sign (an issue's 结果确认).
    requires_fields: tuple[str, ...] = ()

    @property
    def is_group(self) -> bool:
        return "[]" in self.signers_from


@dataclass(frozen=True)
class NumberingRule:
    pattern: str
    dept_field: str
    strip_suffix: str


@dataclass(frozen=True)
class ClosureRule:
    required_fields: tuple[str, ...]
    open_action_items_block: bool


@dataclass(frozen=True)
class Template:
    """A parsed template: its manifest and where its .docx lives."""

    key: str
    version: int
    title_zh: str
    title_en: str
    source_zh: str
    folder: Path
    docx_path: Path
    fields: tuple[FieldSpec, ...]
    roles: tuple[RoleSpec, ...]
    numbering: NumberingRule
    closure: ClosureRule
    retention_years: int = 10
    # Where the archive files this template's documents (one folder per document number).
    archive_folder: str = ""

    @property
    def field_names(self) -> frozenset[str]:
        return frozenset(spec.name for spec in self.fields)

    def summary(self) -> dict[str, object]:
        """Return the ``templates list`` entry: key, titles, version."""
        return {
            "key": self.key,
            "title": self.title_zh,
            "title_en": self.title_en,
            "version": self.version,
        }

    def describe(self) -> dict[str, object]:
        """Return everything ``templates show`` prints: fields, roles, rules."""
        return {
            **self.summary(),
            "source": self.source_zh,
            "docx": str(self.docx_path),
            "fields": [_field_dict(spec) for spec in self.fields],
            "roles": [
                {
                    "key": role.key,
                    "order": role.order,
                    "label_zh": role.label_zh,
                    "label_en": role.label_en,
                    "signers_from": role.signers_from,
                    "parallel_group": role.is_group,
                    "signature_place": role.signature_place,
                    "deadline_hours": role.deadline_hours,
                    "deadline_working_days": role.deadline_working_days,
                    "deemed_consent": role.deemed_consent,
                    "requires_fields": list(role.requires_fields),
                }
                for role in self.roles
            ],
            "numbering": {
                "pattern": self.numbering.pattern,
                "dept_field": self.numbering.dept_field,
                "strip_suffix": self.numbering.strip_suffix,
            },
            "closure": {
                "required_fields": list(self.closure.required_fields),
                "open_action_items_block": self.closure.open_action_items_block,
            },
            "retention_years": self.retention_years,
            "archive_folder": self.archive_folder,
        }


def _field_dict(spec: FieldSpec) -> dict[str, object]:
    out: dict[str, object] = {
        "name": spec.name,
        "type": spec.type,
        "required": spec.required,
        "label_zh": spec.label_zh,
        "label_en": spec.label_en,
    }
    if spec.max_length is not None:
        out["max_length"] = spec.max_length
    if spec.max_items is not None:
        out["max_items"] = spec.max_items
    if spec.values:
        out["values"] = list(spec.values)
    if spec.columns:
        out["columns"] = [_field_dict(column) for column in spec.columns]
    return out


def _parse_field(raw: dict, where: str) -> FieldSpec:
    try:
        kind = raw["type"]
        if kind not in FIELD_TYPES:
            raise ManifestError(
                f"{where}: 未知字段类型 {kind!r}", f"{where}: unknown field type {kind!r}"
            )
        columns = tuple(
            _parse_field(column, f"{where}.{column.get('name', '?')}")
            for column in raw.get("columns", ())
        )
        if kind in ("table", "object") and not columns:
            raise ManifestError(f"{where}: 表格字段缺少列定义", f"{where}: {kind} needs columns")
        if kind == "enum" and not raw.get("values"):
            raise ManifestError(f"{where}: 枚举字段缺少取值", f"{where}: enum needs values")
        return FieldSpec(
            name=raw["name"],
            type=kind,
            required=bool(raw.get("required", False)),
            label_zh=raw["label_zh"],
            label_en=raw["label_en"],
            max_length=raw.get("max_length", DEFAULT_MAX_LENGTH.get(kind)),
            max_items=raw.get("max_items"),
            values=tuple(raw.get("values", ())),
            columns=columns,
        )
    except KeyError as missing:
        raise ManifestError(
            f"{where}: 缺少 {missing.args[0]}", f"{where}: missing {missing.args[0]}"
        ) from None


def _archive_folder(value: object) -> str:
    """Return the manifest's archive folder if it is a sound relative path of its own."""
    try:
        folder = check_archive_path(str(value))
    except BadInput:
        folder = ""
    if not folder or folder.split("/")[0] in RESERVED_FOLDERS:
        raise ManifestError(f"归档目录无效：{value!r}", f"invalid archive_folder {value!r}")
    return folder


def load_template(folder: Path) -> Template:
    """Parse ``folder/manifest.toml``; return the Template or raise ManifestError."""
    manifest_path = folder / "manifest.toml"
    try:
        raw = tomllib.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ManifestError(
            f"找不到模板清单 {manifest_path}", f"no manifest at {manifest_path}"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ManifestError(
            f"模板清单格式错误：{exc}", f"manifest is not valid TOML: {exc}"
        ) from None
    try:
        fields = tuple(_parse_field(item, f"fields.{item.get('name', '?')}")
                       for item in raw["fields"])
        roles = tuple(
            RoleSpec(
                key=item["key"],
                order=int(item["order"]),
                label_zh=item["label_zh"],
                label_en=item["label_en"],
                signers_from=item.get("signers_from", ""),
                signature_place=item.get("signature_place", ""),
                deadline_hours=item.get("deadline_hours"),
                deadline_working_days=item.get("deadline_working_days"),
                deemed_consent=bool(item.get("deemed_consent", False)),
                requires_fields=tuple(item.get("requires_fields", ())),
            )
            for item in raw["roles"]
        )
        numbering = raw.get("numbering", {})
        closure = raw.get("closure", {})
        template = Template(
            key=raw["key"],
            version=int(raw["version"]),
            title_zh=raw["title_zh"],
            title_en=raw["title_en"],
            source_zh=raw.get("source_zh", raw["title_zh"]),
            folder=folder,
            docx_path=folder / raw.get("docx", "template.docx"),
            fields=fields,
            roles=tuple(sorted(roles, key=lambda role: role.order)),
            numbering=NumberingRule(
                pattern=numbering.get("pattern", "{year}-{seq:03d}"),
                dept_field=numbering.get("dept_field", ""),
                strip_suffix=numbering.get("strip_suffix", ""),
            ),
            closure=ClosureRule(
                required_fields=tuple(closure.get("required_fields", ())),
                open_action_items_block=bool(closure.get("open_action_items_block", False)),
            ),
            retention_years=int(raw.get("retention_years", 10)),
            archive_folder=_archive_folder(raw.get("archive_folder",
                                                   f"项目文档-{raw['title_zh']}")),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(
            f"模板清单 {manifest_path} 不完整：{exc}", f"manifest {manifest_path} incomplete: {exc}"
        ) from None
    for role in template.roles:
        if role.deadline_hours is None and role.deadline_working_days is None:
            raise ManifestError(
                f"角色 {role.key} 未设置反馈时限", f"role {role.key} has no response deadline"
            )
        unknown = [name for name in role.requires_fields if name not in template.field_names]
        if unknown:
            raise ManifestError(f"角色 {role.key} 要求的字段不存在：{unknown}",
                                f"role {role.key} requires unknown fields {unknown}")
    return template


@cache
def _shipped() -> dict[str, Template]:
    return {
        folder.name: load_template(folder)
        for folder in sorted(TEMPLATES_DIR.iterdir())
        if (folder / "manifest.toml").is_file()
    }


def list_templates() -> list[Template]:
    """Return every shipped template, sorted by key."""
    return list(_shipped().values())


def get_template(key: str) -> Template:
    """Return the shipped template ``key`` or raise UnknownTemplate naming the known ones."""
    try:
        return _shipped()[key]
    except KeyError:
        known = ", ".join(_shipped())
        raise UnknownTemplate(
            f"未知模板 {key!r}（可用：{known}）", f"unknown template {key!r} (known: {known})"
        ) from None
