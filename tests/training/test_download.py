"""`--data tatoeba`: download once, resume a partial file, check the SHA-256 (loopback server)."""

import hashlib
import http.server
import os
import threading
import zipfile

import pytest

from training import data


class RangeHandler(http.server.BaseHTTPRequestHandler):
    payload = b""
    ranges_seen = []

    def do_GET(self):  # noqa: N802
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.ranges_seen.append(start)
        body = self.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def archive_server(tmp_path):
    archive = tmp_path / "source.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("fra.txt", "".join(f"Sentence number {i}.\tPhrase {i}.\n" for i in range(2000)))
    RangeHandler.payload = archive.read_bytes()
    RangeHandler.ranges_seen = []
    server = http.server.HTTPServer(("127.0.0.1", 0), RangeHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/fra-eng.zip", RangeHandler.payload
    server.shutdown()


def test_download_resumes_and_records_the_checksum(tmp_path, archive_server):
    url, payload = archive_server
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "fra-eng.zip.part").write_bytes(payload[:1000])  # an interrupted download
    path = data.download_tatoeba(str(cache), url=url)
    assert RangeHandler.ranges_seen == [1000]
    assert open(path, "rb").read() == payload
    assert (cache / "fra-eng.zip.sha256").read_text() == hashlib.sha256(payload).hexdigest()
    assert len(data.load_sentences(path).sentences) == 2000
    assert data.download_tatoeba(str(cache), url=url) == path  # cached: no second request
    assert RangeHandler.ranges_seen == [1000]


def test_checksum_mismatch_is_an_error(tmp_path, archive_server):
    url, _ = archive_server
    with pytest.raises(data.DataError, match="does not match"):
        data.download_tatoeba(str(tmp_path), url=url, sha256="0" * 64)


def test_unreachable_source_says_how_to_use_a_local_copy(tmp_path):
    with pytest.raises(data.DataError, match="TFODE_TATOEBA"):
        data.download_tatoeba(str(tmp_path), url="http://127.0.0.1:9/fra-eng.zip")
    assert not os.path.exists(tmp_path / "fra-eng.zip")
