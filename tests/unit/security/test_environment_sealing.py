"""Keys and the cipher of function environments: key formats and sources, the key file made on
first start, sealing, wrong keys, and rotation with retired keys."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from fnplat.config import SecretsSettings, Settings
from fnplat.errors import SecretKeyError
from fnplat.sealing import EnvironmentCipher
from fnplat.secret_keys import SecretKeys, create_key_file, generate_key, load_keys, parse_key

ENV = {"DB_PASSWORD": "hunter2-very-secret", "STAGE": "prod"}


def cipher(current: str, *retired: str) -> EnvironmentCipher:
    return EnvironmentCipher(SecretKeys(current.encode(), tuple(k.encode() for k in retired), "test"))


# ---- sealing


def test_seal_and_open() -> None:
    box = cipher(generate_key())
    token = box.seal(ENV)
    assert "hunter2" not in token and "DB_PASSWORD" not in token and token.isascii()
    assert box.open(token) == ENV
    assert box.seal(ENV) != token  # a fresh IV each time
    assert box.open(box.seal({})) == {}


def test_a_wrong_key_is_a_clear_error_without_the_key() -> None:
    key = generate_key()
    token = cipher(generate_key()).seal(ENV)
    with pytest.raises(SecretKeyError) as caught:
        cipher(key).open(token)
    assert "cannot be decrypted with the key from test" in caught.value.message
    assert "FNPLAT_SECRET_OLD_KEYS" in caught.value.message and key not in caught.value.message


@pytest.mark.parametrize("token", ["", "not a token", "gAAAAAB" + "x" * 80, "é"])
def test_garbage_tokens_are_a_key_error(token: str) -> None:
    with pytest.raises(SecretKeyError):
        cipher(generate_key()).open(token)


def test_rotation_retired_keys_decrypt_and_reseal_moves_to_the_current_key() -> None:
    old, new = generate_key(), generate_key()
    token = cipher(old).seal(ENV)
    rotating = cipher(new, old)
    assert rotating.open(token) == ENV and not rotating.is_current(token)
    moved = rotating.reseal(token)
    assert rotating.is_current(moved) and cipher(new).open(moved) == ENV
    with pytest.raises(SecretKeyError):
        cipher(old).open(moved)
    assert not cipher(new).is_current(token)


# ---- key formats and sources


@pytest.mark.parametrize(
    "text",
    [
        "",
        "short",
        generate_key()[:-1],  # 43 characters
        generate_key()[:-1] + "!",  # a character outside url-safe base64
        "A" * 44,  # no padding where 32 bytes need it
        "+" * 43 + "=",  # the standard base64 alphabet, not the url-safe one
    ],
)
def test_malformed_keys_are_refused_naming_the_source_not_the_value(text: str) -> None:
    with pytest.raises(SecretKeyError) as caught:
        parse_key(text, "FNPLAT_SECRET_KEY")
    message = caught.value.message
    assert message.startswith("FNPLAT_SECRET_KEY is not a valid key") and "urlsafe_b64encode" in message
    assert not text or text not in message


def test_generated_keys_parse() -> None:
    key = generate_key()
    assert len(key) == 44 and parse_key(f"  {key}\n", "x") == key.encode()


def test_the_environment_key_wins_and_retired_keys_add_up(tmp_path: Path) -> None:
    key, old1, old2 = generate_key(), generate_key(), generate_key()
    settings = SecretsSettings(key=key, old_keys=(old1, old2))
    keys = load_keys(settings, tmp_path / "secret.key", may_create=True)
    assert keys.source == "FNPLAT_SECRET_KEY"
    assert (keys.current, keys.retired) == (key.encode(), (old1.encode(), old2.encode()))
    assert not (tmp_path / "secret.key").exists()  # nothing made when a key is given
    assert key not in repr(keys) and key not in repr(SecretsSettings(key=key, old_keys=(old1,)))
    assert old1 not in repr(Settings(secrets=SecretsSettings(key=key, old_keys=(old1,))))


def test_first_start_makes_a_private_key_file_and_reuses_it(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    first = load_keys(SecretsSettings(), path, may_create=True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and first.source == str(path)
    assert load_keys(SecretsSettings(), path, may_create=True).current == first.current
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]  # no temp file left


def test_no_key_is_made_up_over_encrypted_data(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    with pytest.raises(SecretKeyError, match=re.escape(f"no secret key: {path} does not exist")):
        load_keys(SecretsSettings(), path, may_create=False)
    assert not path.exists()


def test_key_file_lines_are_current_then_retired(tmp_path: Path) -> None:
    key, old = generate_key(), generate_key()
    extra = generate_key()
    path = tmp_path / "keys"
    path.write_text(f"# rotated 2026-12\n{key}\n\n{old}\n")
    settings = SecretsSettings(key_file=str(path), old_keys=(extra,))
    keys = load_keys(settings, tmp_path / "unused", may_create=True)
    assert (keys.current, keys.retired) == (key.encode(), (old.encode(), extra.encode()))
    assert not (tmp_path / "unused").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("", "holds no key"),
        ("# only a comment\n", "holds no key"),
        ("not-a-key\n", "line 1 of"),
    ],
)
def test_bad_key_files(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "keys"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SecretKeyError, match=re.escape(message)):
        load_keys(SecretsSettings(key_file=str(path)), tmp_path / "secret.key", may_create=True)
    assert not (tmp_path / "secret.key").exists()


def test_a_key_file_is_never_replaced(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text("existing\n")
    create_key_file(path)
    assert path.read_text() == "existing\n" and [p.name for p in tmp_path.iterdir()] == ["secret.key"]


def test_settings_from_the_environment(tmp_path: Path) -> None:
    key, old1, old2 = generate_key(), generate_key(), generate_key()
    settings = Settings.from_env(
        data_dir=tmp_path,
        env={
            "FNPLAT_SECRET_KEY": key,
            "FNPLAT_SECRET_OLD_KEYS": f"{old1}, {old2},",
            "FNPLAT_SECRET_KEY_FILE": "/k",
        },
    )
    assert settings.secrets == SecretsSettings(key=key, key_file="/k", old_keys=(old1, old2))
    assert settings.secret_key_file == tmp_path.resolve() / "secret.key"
