"""`fnctl up` with a TLS certificate: HTTPS only, https URLs everywhere, and fnctl verifying the
certificate (with FNCTL_CA_BUNDLE for a self-signed one)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import requests
from e2e_platform import running_platform
from tls_certs import self_signed_for_loopback

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]


def test_the_platform_serves_https_and_fnctl_verifies_it(docker_images: None, tmp_path: Path) -> None:
    cert = self_signed_for_loopback(tmp_path)
    with running_platform(
        tmp_path / "data", FNPLAT_TLS_CERT=str(cert.cert), FNPLAT_TLS_KEY=str(cert.key)
    ) as plat:
        url = f"https://127.0.0.1:{plat.port}"
        assert (plat.data_dir / "endpoint").read_text().strip() == url
        assert any(f"fnplat is up at {url} " in line for line in plat.output)
        assert requests.get(f"{url}/healthz", verify=str(cert.cert), timeout=10).json() == {"status": "ok"}

        # fnctl trusts the system store only: a self-signed certificate is refused, clearly.
        refused = plat.fnctl("ls", check=False)
        assert refused.returncode == 1
        assert "self-signed certificate" in refused.stderr and "FNCTL_CA_BUNDLE" in refused.stderr

        plat.env["FNCTL_CA_BUNDLE"] = str(cert.cert)
        deployed = plat.fnctl("deploy", str(REPO / "examples" / "hello-python"))
        assert f"{url}/hello/{{name}}" in deployed.stdout
        invoked = plat.fnctl("invoke", "hello", "--payload", '{"pathParameters": {"name": "tls"}}')
        assert "Hello, tls!" in json.loads(json.loads(invoked.stdout)["body"])["message"]

        # Plain HTTP on that port gets no HTTP answer.
        with socket.create_connection(("127.0.0.1", plat.port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            try:
                answer = sock.recv(4096)
            except (ConnectionResetError, TimeoutError):
                answer = b""
        assert not answer.startswith(b"HTTP/1.1 200")
