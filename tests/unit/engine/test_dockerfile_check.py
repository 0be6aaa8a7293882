"""What a function's Dockerfile may not do: build on or copy from a function image (by name),
ADD a URL (the daemon would fetch it outside the build sandbox). Each refusal names the line."""

from __future__ import annotations

import pytest

from fnplat.controller.dockerfile_check import check_dockerfile, expand, image_references, instructions
from fnplat.errors import InvalidParameter


def refused(dockerfile: str, allow: bool = False) -> str:
    with pytest.raises(InvalidParameter) as failure:
        check_dockerfile(dockerfile, allow)
    assert failure.value.status == 400
    return failure.value.message


@pytest.mark.parametrize(
    ("dockerfile", "line", "shown"),
    [
        ("FROM fnplat-fn/other:abc\n", 1, "FROM fnplat-fn/other:abc"),
        ("# base\n\nfrom --platform=linux/amd64 fnplat-fn/other AS b\n", 3, "from --platform"),
        ("FROM docker.io/fnplat-fn/other:1\n", 1, "docker.io/fnplat-fn/other"),
        ("FROM index.docker.io/fnplat-fn/x@sha256:" + "0" * 64 + "\n", 1, "index.docker.io/fnplat-fn/x"),
        ("FROM FNPLAT-FN/Other\n", 1, "FNPLAT-FN/Other"),
        ("ARG BASE=fnplat-fn/other:abc\nFROM $BASE\n", 2, "FROM $BASE"),
        ("ARG B\nFROM ${B:-fnplat-fn/other}\n", 2, "FROM ${B:-fnplat-fn/other}"),
        ("FROM \\\n  fnplat-fn/other\n", 1, "FROM fnplat-fn/other"),
        ("# escape=`\nFROM `\n  fnplat-fn/other\n", 2, "FROM fnplat-fn/other"),
        (
            "FROM debian:bookworm AS build\nFROM debian:bookworm\n"
            "COPY --from=fnplat-fn/other:1 /var/task /x\n",
            3,
            "COPY --from=fnplat-fn/other:1",
        ),
    ],
)
def test_a_function_image_is_no_base_or_copy_source(dockerfile: str, line: int, shown: str) -> None:
    message = refused(dockerfile)
    assert message.startswith(f"Dockerfile line {line}: ")
    assert shown in message
    assert "FNPLAT_BUILD_ALLOW_FUNCTION_BASES" in message


def test_an_operator_may_allow_function_bases() -> None:
    references = check_dockerfile("FROM fnplat-fn/other:abc\nCOPY --from=fnplat-fn/x / /\n", True)
    assert [r.image for r in references] == ["fnplat-fn/other:abc", "fnplat-fn/x"]


def test_stages_base_images_and_stage_copies_pass() -> None:
    dockerfile = (
        "ARG PY=fnplat/runtime-python3.11:latest\n"
        "FROM ${PY} AS build\n"
        "RUN echo fnplat-fn/not-a-base\n"
        "FROM debian:bookworm-slim\n"
        "COPY --from=build /x /x\n"
        "COPY --from=0 /y /y\n"
        "COPY --chown=1:1 a b\n"
        "FROM build\n"
    )
    references = check_dockerfile(dockerfile, False)
    # Stages are not images; everything else is inspected by the engine for our label.
    assert [r.image for r in references] == ["fnplat/runtime-python3.11:latest", "debian:bookworm-slim"]


@pytest.mark.parametrize(
    "add",
    [
        "ADD http://169.254.169.254/latest/meta-data/ /m",
        "ADD --chown=1:1 https://example.com/x.tgz /x",
        'ADD ["http://127.0.0.1:8080/", "/x"]',
        "ADD git@github.com:o/r.git /r",
        "add ftp://host/x /x",
    ],
)
def test_add_of_a_url_is_refused(add: str) -> None:
    message = refused(f"FROM debian:bookworm\n{add}\n")
    assert message.startswith("Dockerfile line 2: ") and "RUN step" in message


def test_add_of_local_files_passes() -> None:
    check_dockerfile('FROM debian:bookworm\nADD app.tgz /srv/\nADD ["a b", "/c"]\n', False)


def test_unresolvable_image_names_are_refused() -> None:
    assert "unresolved variables" in refused("FROM debian\nCOPY --from=$STAGE /a /b\n")


def test_instructions_join_continuations_and_skip_comments() -> None:
    parsed = instructions("# c\nRUN a \\\n  # inside\n\n  b\nCMD [\"x\"]\n")
    assert [(i.line, i.keyword, i.arguments) for i in parsed] == [(2, "RUN", "a b"), (6, "CMD", '["x"]')]


def test_variable_expansion() -> None:
    variables = {"A": "a", "E": ""}
    assert expand("$A-${A}-${E:-d}-${A:+alt}-${E:+alt}-$MISSING", variables) == "a-a-d-alt--"
    assert image_references("FROM x\n")[0].image == "x"
