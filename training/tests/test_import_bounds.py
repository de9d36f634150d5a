"""Dataset imports are bounded: sizes (as sent and decompressed), server folders, hub ids.

The gzip bombs are real gzip files; the memory bound is measured with tracemalloc.
"""

import gzip
import json
import tracemalloc
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from tests.helpers import missing_part
from training import services
from training.limits import ImportRefused, hub_id, server_path
from training.models import Dataset
from training.tests.test_admin import admin_client  # noqa: F401 - fixture
from training.tools.hub_export import main

GOOD = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}


def gzip_of_zeros(mib: int) -> bytes:
    return gzip.compress(b"\0" * (mib << 20), compresslevel=9)


@pytest.mark.django_db
class TestSizes:
    def test_a_gzip_bomb_is_refused_within_the_bound(self, settings, tmp_path):
        settings.ARENA_DATA_DIR = tmp_path
        settings.ARENA_IMPORT_MAX_BYTES = 1 << 20
        bomb = gzip_of_zeros(64)
        assert len(bomb) < 100_000
        tracemalloc.start()
        try:
            with pytest.raises(services.TrainingError) as err:
                services.dataset_import(name="bomb", data=bomb, fmt="messages")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert "larger than 1048576 bytes when decompressed" in str(err.value)
        assert "ARENA_IMPORT_MAX_BYTES" in str(err.value)
        assert peak < 16 << 20, f"peak {peak} bytes: the bomb was not streamed"
        assert not Dataset.objects.exists()

    def test_the_command_line_says_why_and_stores_nothing(self, settings, tmp_path):
        settings.ARENA_DATA_DIR = tmp_path
        settings.ARENA_IMPORT_MAX_BYTES = 1 << 20
        path = tmp_path / "bomb.jsonl.gz"
        path.write_bytes(gzip_of_zeros(8))
        err = StringIO()
        with pytest.raises(CommandError, match="nothing was stored"):
            call_command("import_dataset", str(path), "--format", "messages", stderr=err)
        assert "when decompressed" in err.getvalue()
        assert not Dataset.objects.exists()

    def test_a_file_over_the_upload_limit_is_refused_before_reading(self, settings, tmp_path):
        settings.ARENA_DATA_DIR = tmp_path
        settings.ARENA_IMPORT_MAX_UPLOAD_BYTES = 1000
        data = (json.dumps(GOOD) + "\n").encode() * 100
        with pytest.raises(services.TrainingError, match="ARENA_IMPORT_MAX_UPLOAD_BYTES"):
            services.dataset_import(name="big", data=data, fmt="messages")

    def test_the_form_shows_the_limit(self, admin_client, settings, tmp_path):  # noqa: F811
        settings.ARENA_DATA_DIR = tmp_path
        settings.ARENA_IMPORT_MAX_BYTES = 1 << 20
        upload = SimpleUploadedFile("bomb.jsonl.gz", gzip_of_zeros(4))
        response = admin_client.post(reverse("admin:training_dataset_add"), {
            "import_from": "upload", "name": "bomb", "data_format": "messages", "upload": upload,
        })
        assert response.status_code == 200
        assert b"when decompressed" in response.content and b"ARENA_IMPORT_MAX_BYTES" in response.content
        assert not Dataset.objects.exists()

    def test_within_the_bounds_an_upload_is_streamed_and_stored(self, admin_client, settings, tmp_path):  # noqa: F811
        settings.ARENA_DATA_DIR = tmp_path
        upload = SimpleUploadedFile("chat.jsonl.gz", gzip.compress((json.dumps(GOOD) + "\n").encode() * 3))
        response = admin_client.post(reverse("admin:training_dataset_add"), {
            "import_from": "upload", "name": "chat", "data_format": "messages", "upload": upload,
        })
        assert response.status_code == 302
        assert Dataset.objects.get(name="chat").row_count == 3


@pytest.mark.django_db
class TestServerPaths:
    @pytest.fixture
    def root(self, settings, tmp_path):
        settings.ARENA_DATA_DIR = tmp_path
        root = tmp_path / "imports"
        (root / "team").mkdir(parents=True)
        (root / "team" / "chat.jsonl").write_text(json.dumps(GOOD) + "\n")
        (tmp_path / "outside.jsonl").write_text(json.dumps(GOOD) + "\n")
        settings.ARENA_IMPORT_ROOTS = [root]
        return root

    def test_a_file_under_a_root_is_imported(self, root):
        dataset = services.dataset_from_path("team/chat.jsonl", name="chat", fmt="messages")
        assert dataset.row_count == 1 and dataset.source_ref == str(root / "team" / "chat.jsonl")

    @pytest.mark.parametrize("path", ["/etc/passwd", "../outside.jsonl", "team/../../outside.jsonl",
                                      "/etc/no-such-file", "/nonexistent/../etc/shadow"])
    def test_paths_outside_the_roots_get_one_answer_whether_or_not_they_exist(self, root, path):
        with pytest.raises(services.TrainingError) as err:
            services.dataset_from_path(path, name="x", fmt="messages")
        assert str(err.value).startswith("Only files under ") and "ARENA_IMPORT_ROOTS" in str(err.value)
        assert not Dataset.objects.exists()

    def test_a_symlink_out_of_a_root_is_refused(self, root):
        (root / "passwd.jsonl").symlink_to("/etc/passwd")
        with pytest.raises(ImportRefused, match="Only files under"):
            server_path("passwd.jsonl")

    def test_no_roots_turns_server_imports_off(self, root, settings):
        settings.ARENA_IMPORT_ROOTS = []
        with pytest.raises(services.TrainingError, match="turned off"):
            services.dataset_from_path(str(root / "team" / "chat.jsonl"), name="x", fmt="messages")

    def test_the_form_refuses_etc_passwd(self, admin_client, root):  # noqa: F811
        response = admin_client.post(reverse("admin:training_dataset_add"), {
            "import_from": "path", "name": "pw", "data_format": "messages", "server_path": "/etc/passwd",
        })
        assert response.status_code == 200 and b"Only files under" in response.content
        assert b"root:" not in response.content


class TestHubIds:
    @pytest.mark.parametrize("bad", ["-h", "--help", "--out=/tmp/x", "a/b/c", "../x", "a..b", "a--b", "", " ",
                                     "x" * 97, "owner/-name", "name.", "with space"])
    def test_bad_ids_are_refused_before_any_subprocess(self, bad, monkeypatch):
        monkeypatch.setattr("subprocess.run", lambda *a, **k: pytest.fail("a subprocess was started"))
        with pytest.raises(services.TrainingError, match="not a Hugging Face dataset id"):
            services.dataset_from_hub(bad, name="x", fmt="messages")

    def test_bad_splits_are_refused(self, monkeypatch):
        monkeypatch.setattr("subprocess.run", lambda *a, **k: pytest.fail("a subprocess was started"))
        with pytest.raises(services.TrainingError, match="not a dataset split"):
            services.dataset_from_hub("HuggingFaceH4/ultrachat_200k", name="x", fmt="messages", split="--out=x")

    @pytest.mark.parametrize("good", ["HuggingFaceH4/ultrachat_200k", "imdb", "Anthropic/hh-rlhf", "a.b-c_d/e1"])
    def test_real_ids_pass(self, good):
        assert hub_id(good) == good


@pytest.mark.django_db
class TestHubIdsAreNeverLocalPaths:
    """``datasets.load_dataset("var/training")`` reads a local folder of that name when one exists."""

    def plant(self, root):
        folder = root / "owner" / "name"
        folder.mkdir(parents=True)
        (folder / "train.jsonl").write_text(json.dumps(GOOD) + "\n")  # a file of the server, not of the hub
        return folder

    def test_an_id_naming_a_folder_in_the_working_directory_is_looked_up_on_the_hub_only(
            self, settings, tmp_path, monkeypatch):
        from pathlib import Path


        if not Path(settings.ARENA_ENGINE_PYTHON).exists():
            missing_part(f"engine environment missing: {settings.ARENA_ENGINE_PYTHON} (make engine)")
        repo = str(settings.BASE_DIR)
        workdir = tmp_path / "workdir"
        self.plant(workdir)
        monkeypatch.setenv("PYTHONPATH", repo)  # the tool still imports from the repository
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no hub here: the lookup must fail, not read the folder
        settings.BASE_DIR = workdir  # the service's working directory for the tool
        settings.ARENA_DATA_DIR = tmp_path / "data"
        with pytest.raises(services.TrainingError, match="Could not load 'owner/name'"):
            services.dataset_from_hub("owner/name", name="planted", fmt="messages")
        assert not Dataset.objects.exists()

    @pytest.mark.parametrize("path", ["/etc", "~/data", "./owner/name"])
    def test_the_tool_refuses_a_path(self, path, tmp_path, capsys):
        assert main([path, "--out", str(tmp_path / "out.jsonl")]) == 2
        assert "is a path, not a hub dataset id" in capsys.readouterr().err
        assert not (tmp_path / "out.jsonl").exists()
