"""Profile loading: find a YAML device profile by name and return its validated document.

Built-in profiles live in ``drivers/profiles/``; configured ``profile_dirs`` are searched first
so an operator can override a built-in. Each driver validates the document with its own model.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from drivers.errors import ProfileError

BUILTIN_DIR = Path(__file__).parent / "profiles"
P = TypeVar("P", bound=BaseModel)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ProfileDoc:
    """A profile's raw YAML mapping plus where it came from."""

    name: str
    path: Path
    driver: str
    data: dict[str, Any]


def format_loc(loc: Iterable[int | str]) -> str:
    """Render a pydantic error location as ``devices[2].registers[0].type``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def validation_problems(err: ValidationError, prefix: str = "") -> list[str]:
    """One 'path: message' line per pydantic error, with an optional path prefix."""
    lines = []
    for e in err.errors(include_url=False):
        loc = format_loc(e["loc"])
        path = f"{prefix}.{loc}" if prefix and loc and not loc.startswith("[") else f"{prefix}{loc}"
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] in ("literal_error", "enum"):
            msg = f"{e['input']!r} is not one of {e.get('ctx', {}).get('expected', '')}"
        lines.append(f"{path or '(top)'}: {msg}")
    return lines


class ProfileLibrary:
    """Finds, parses and caches profiles from the configured and built-in directories."""

    def __init__(self, extra_dirs: Iterable[str | Path] = ()) -> None:
        self.dirs = [Path(d) for d in extra_dirs] + [BUILTIN_DIR]
        self._docs: dict[str, ProfileDoc] = {}
        self._parsed: dict[tuple[str, type[Any]], Any] = {}
        self._derived: dict[Hashable, Any] = {}

    def names(self) -> dict[str, ProfileDoc]:
        """Every profile found, first directory winning on a name clash."""
        found: dict[str, ProfileDoc] = {}
        for d in reversed(self.dirs):
            if not d.is_dir():
                continue
            for p in sorted(d.glob("*.yaml")):
                found[p.stem] = self._read(p)
        return dict(sorted(found.items()))

    def doc(self, name: str) -> ProfileDoc:
        """The raw document for ``name``; ProfileError if no directory has it."""
        if name in self._docs:
            return self._docs[name]
        for d in self.dirs:
            p = d / f"{name}.yaml"
            if p.is_file():
                doc = self._read(p)
                self._docs[name] = doc
                return doc
        searched = ", ".join(str(d) for d in self.dirs)
        raise ProfileError(f"profile {name!r} not found (searched {searched})")

    def load(self, name: str, model: type[P], driver: str, hook: Callable[[P], None] | None = None) -> P:
        """Parse profile ``name`` with ``model``, checking it is meant for ``driver``; cached."""
        key = (name, model)
        if key in self._parsed:
            return self._parsed[key]  # type: ignore[no-any-return,unused-ignore]
        doc = self.doc(name)
        if doc.driver != driver:
            raise ProfileError(f"profile {name!r} ({doc.path}) is for driver {doc.driver!r}, not {driver!r}")
        try:
            parsed = model.model_validate(doc.data)
        except ValidationError as e:
            raise ProfileError(
                f"profile {name!r} ({doc.path}):\n  " + "\n  ".join(validation_problems(e))
            ) from None
        if hook:
            hook(parsed)
        self._parsed[key] = parsed
        return parsed

    def memo(self, key: Hashable, build: Callable[[], T]) -> T:
        """A value derived from profiles (e.g. an expanded register map), built once per library.

        A thousand devices sharing one profile then share one copy instead of a thousand.
        """
        try:
            return self._derived[key]  # type: ignore[no-any-return,unused-ignore]
        except KeyError:
            value = self._derived[key] = build()
            return value

    @staticmethod
    def _read(path: Path) -> ProfileDoc:
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ProfileError(f"{path}: invalid YAML: {e}") from None
        if not isinstance(data, dict) or "driver" not in data:
            raise ProfileError(f"{path}: a profile must be a mapping with a 'driver' key")
        return ProfileDoc(path.stem, path, str(data["driver"]), data)
