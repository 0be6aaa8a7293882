"""What a function's Dockerfile may not do, checked before it is built: pure, no Docker.

- Build on another function's image (`FROM fnplat-fn/...`, `COPY --from=fnplat-fn/...`): that
  image holds another function's code and baked-in secrets. An operator may allow it. Names are
  checked here; docker_engine.py also inspects every image a Dockerfile names and refuses those
  our builds labelled, which catches image ids and other names of the same image.
- `ADD` of a URL: the classic builder downloads it in the Docker daemon, on the host's network,
  outside the build's sandbox (it would reach the host's loopback and cloud metadata).

Every refusal is an InvalidParameter naming the Dockerfile line, for the user.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from fnplat.errors import InvalidParameter

FUNCTION_IMAGE_PREFIX = "fnplat-fn/"
_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_VARIABLE_RE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")
_DEFAULT_REGISTRY_PREFIXES = ("docker.io/", "index.docker.io/", "registry-1.docker.io/")


@dataclass(frozen=True, slots=True)
class Instruction:
    line: int  # 1-based line where it starts
    keyword: str  # upper-case
    arguments: str  # after the keyword, continuation lines joined
    text: str  # as written, continuation lines joined, for messages


@dataclass(frozen=True, slots=True)
class ImageReference:
    """An image a Dockerfile builds on or copies from."""

    instruction: Instruction
    image: str  # variables expanded


def instructions(dockerfile: str) -> list[Instruction]:
    """The instructions of a Dockerfile: directives honoured, comments dropped, continuations joined."""
    escape = "\\"
    lines = dockerfile.splitlines()
    index = 0
    while index < len(lines):  # parser directives: only at the very top
        match = _DIRECTIVE_RE.match(lines[index].strip())
        if match is None:
            break
        if match.group(1).lower() == "escape" and match.group(2) in ("\\", "`"):
            escape = match.group(2)
        index += 1
    found: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(lines[index:], start=index + 1):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and (not stripped or stripped.startswith("#")):
            continue  # comments and empty lines inside a continuation are skipped
        if not pending:
            start = number
        if raw.rstrip().endswith(escape):
            pending.append(raw.rstrip()[:-1])
            continue
        pending.append(raw)
        found.append(_instruction(start, " ".join(part.strip() for part in pending)))
        pending = []
    if pending:
        found.append(_instruction(start, " ".join(part.strip() for part in pending)))
    return found


def _instruction(line: int, text: str) -> Instruction:
    keyword, _, arguments = text.partition(" ")
    return Instruction(line, keyword.upper(), arguments.strip(), text.strip())


def expand(value: str, variables: dict[str, str]) -> str:
    """Dockerfile variable substitution: $X, ${X}, ${X:-default}, ${X:+alternative}."""

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(4)
        current = variables.get(name, "")
        if match.group(2) == ":-":
            return current or match.group(3)
        if match.group(2) == ":+":
            return match.group(3) if current else ""
        return current

    return _VARIABLE_RE.sub(substitute, value)


def image_references(dockerfile: str) -> list[ImageReference]:
    """Every image the Dockerfile's FROM and COPY --from name (not its own stages)."""
    global_args: dict[str, str] = {}
    stages: set[str] = set()
    stage_count = 0
    references: list[ImageReference] = []
    seen_from = False
    for instruction in instructions(dockerfile):
        if instruction.keyword == "ARG" and not seen_from:
            for declaration in instruction.arguments.split():
                name, _, default = declaration.partition("=")
                global_args[name] = _unquote(default)
        elif instruction.keyword == "FROM":
            seen_from = True
            words = [w for w in instruction.arguments.split() if not w.startswith("--")]
            image = expand(words[0], global_args) if words else ""
            if image and image.lower() not in stages:
                references.append(ImageReference(instruction, image))
            if len(words) >= 3 and words[1].upper() == "AS":
                stages.add(words[2].lower())
            stage_count += 1
        elif instruction.keyword == "COPY":
            for word in instruction.arguments.split():
                if not word.startswith("--"):
                    break
                if word.lower().startswith("--from="):
                    source = word.split("=", 1)[1]
                    if source.lower() in stages or (source.isdigit() and int(source) < stage_count):
                        continue
                    references.append(ImageReference(instruction, source))
    return references


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def normalized(image: str) -> str:
    """The repository path Docker resolves a name to, without the default registry's prefixes."""
    name = image.lower()
    for prefix in _DEFAULT_REGISTRY_PREFIXES:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    return name.removeprefix("library/")


def is_function_image_name(image: str) -> bool:
    return normalized(image).startswith(FUNCTION_IMAGE_PREFIX)


def refusal(instruction: Instruction, reason: str) -> InvalidParameter:
    shown = instruction.text if len(instruction.text) <= 200 else instruction.text[:200] + "..."
    return InvalidParameter(f"Dockerfile line {instruction.line}: {shown}: {reason}")


FUNCTION_BASE_REASON = (
    "a function's image (fnplat-fn/*) cannot be a base or a COPY source"
    " (an operator may allow it with FNPLAT_BUILD_ALLOW_FUNCTION_BASES)"
)


def check_dockerfile(dockerfile: str, allow_function_bases: bool) -> list[ImageReference]:
    """Refuse what no function's Dockerfile may do; return the images it names (for the engine's
    label check). Raises InvalidParameter naming the first refused line."""
    for instruction in instructions(dockerfile):
        if instruction.keyword == "ADD":
            for source in _add_sources(instruction.arguments):
                if "://" in source or source.startswith("git@"):
                    raise refusal(
                        instruction,
                        "ADD of a URL is fetched by the Docker daemon outside the build's sandbox;"
                        " download it in a RUN step instead",
                    )
    references = image_references(dockerfile)
    for reference in references:
        if "$" in reference.image:
            raise refusal(reference.instruction, "image names with unresolved variables are not allowed")
        if not allow_function_bases and is_function_image_name(reference.image):
            raise refusal(reference.instruction, FUNCTION_BASE_REASON)
    return references


def _add_sources(arguments: str) -> list[str]:
    """The sources of an ADD (all but the last word), in shell or JSON form, without flags."""
    if arguments.startswith("["):
        try:
            words = json.loads(arguments)
        except ValueError:
            words = arguments.split()
        words = [str(w) for w in words] if isinstance(words, list) else []
    else:
        words = arguments.split()
    words = [w for w in words if not w.startswith("--")]
    return words[:-1]
