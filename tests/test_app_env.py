"""``python app.py`` listens where Gradio's GRADIO_SERVER_NAME / GRADIO_SERVER_PORT say (Hugging Face Spaces, Docker),
unless --host / --port are given; checked on the arguments ``demo.launch`` gets, without starting a server."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("gradio")

from app import DEFAULT_HOST, DEFAULT_PORT, MAX_UPLOAD, launch_kwargs, parse_args  # noqa: E402

SPACE = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "7861"}
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _in_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # --weights defaults to ./weights


@pytest.mark.parametrize("argv, env, where", [
    ([], {}, (DEFAULT_HOST, DEFAULT_PORT)),
    ([], SPACE, ("0.0.0.0", 7861)),
    ([], {"GRADIO_SERVER_PORT": " 8080 "}, (DEFAULT_HOST, 8080)),
    ([], {"GRADIO_SERVER_NAME": "", "GRADIO_SERVER_PORT": ""}, (DEFAULT_HOST, DEFAULT_PORT)),  # set but empty
    (["--host", "127.0.0.2"], SPACE, ("127.0.0.2", 7861)),  # a flag wins over its variable only
    (["--port", "9000"], SPACE, ("0.0.0.0", 9000)),
    (["--host", "::1", "--port", "9001"], SPACE, ("::1", 9001)),
    (["--port", "9002"], {"GRADIO_SERVER_PORT": "not a port"}, (DEFAULT_HOST, 9002)),  # never read then
])
def test_flags_then_gradio_variables_then_defaults(argv, env, where):
    kwargs = launch_kwargs(parse_args(argv, env=env))
    assert (kwargs["server_name"], kwargs["server_port"]) == where
    assert kwargs["max_file_size"] == MAX_UPLOAD and kwargs["share"] is False


def test_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    args = parse_args([])
    assert (args.host, args.port) == ("0.0.0.0", 7999)


@pytest.mark.parametrize("argv, env, words", [
    ([], {"GRADIO_SERVER_PORT": "http"}, ["GRADIO_SERVER_PORT", "'http'", "--port"]),
    ([], {"GRADIO_SERVER_PORT": "70000"}, ["GRADIO_SERVER_PORT", "'70000'"]),
    (["--port", "0"], {}, ["--port", "1-65535", "got 0"]),
])
def test_a_bad_port_is_one_usage_error(argv, env, words, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as info:
        parse_args(argv, env=env)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(w in err for w in words), err


def test_allowed_paths_are_the_examples_folder(tmp_path):
    (tmp_path / "examples").mkdir()
    kwargs = launch_kwargs(parse_args(["--weights", str(tmp_path)], env={}))
    assert kwargs["allowed_paths"] == [str(tmp_path / "examples")]


def test_a_missing_weights_folder_is_one_usage_error(tmp_path, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as info:  # before: the page started with no model and said nothing
        parse_args(["--weights", str(tmp_path / "nowhere")], env={})
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"--weights {tmp_path / 'nowhere'}: no such folder" in err, err
