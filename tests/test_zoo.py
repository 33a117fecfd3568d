"""The model zoo: released weights by tag, served here by a real HTTP server on 127.0.0.1 (never the real host)."""

import hashlib
import http.server
import io
import threading
from pathlib import Path

import pytest
import timm
import torch

import resmlp
from resmlp import create_model
from resmlp.checkpoint import convert
from resmlp.zoo import Weights, WeightsUnavailable, cache_dir, fetch

REPO = Path(__file__).resolve().parents[1]


def official_file(seed: int, num_classes: int = 1000) -> tuple[bytes, dict[str, torch.Tensor]]:
    """An S12 file in the official deit layout (a raw state dict), with weights of our own making."""
    torch.manual_seed(seed)
    model = create_model("resmlp_s12", num_classes=num_classes)
    ours = {k: v.clone() for k, v in model.state_dict().items()}
    buffer = io.BytesIO()
    torch.save(convert(ours, "resmlp", "deit"), buffer)
    return buffer.getvalue(), ours


class Server:
    """Serves ``files`` (name -> bytes); ``truncate`` names files sent short, as when a transfer is cut."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.truncate, self.requests = files, set(), []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append(name)
                body = server.files.get(name)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 3] if name in server.truncate else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/deit/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def released():
    """The files of three released tags, in the official layout."""
    files, weights = {}, {}
    for seed, name in enumerate(["resmlp_12_no_dist.pth", "resmlp_12_dist.pth", "resmlp_12_dino.pth"]):
        files[name], weights[name] = official_file(seed)
    return files, weights


@pytest.fixture
def zoo(released, tmp_path, monkeypatch):
    files, weights = released
    server = Server(dict(files))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("RESMLP_WEIGHTS_URL", server.url)
    yield server, weights
    server.stop()


def same_weights(model: torch.nn.Module, expected: dict[str, torch.Tensor], skip_head: bool = False) -> bool:
    state = model.state_dict()
    return all(torch.equal(state[k], v) for k, v in expected.items() if not (skip_head and k.startswith("head.")))


def test_download_into_torch_hub_cache_then_load_offline(zoo, tmp_path):
    server, weights = zoo
    model = create_model("resmlp_s12.fb_distilled_in1k", pretrained=True)
    assert same_weights(model, weights["resmlp_12_dist.pth"]) and model.num_classes == 1000
    cached = tmp_path / "torch_home" / "hub" / "checkpoints" / "resmlp_12_dist.pth"
    assert cache_dir() == cached.parent and cached.is_file()
    assert not [p for p in cached.parent.iterdir() if p.name.endswith(".partial")]
    server.stop()  # from now on nothing can be downloaded
    again = create_model("resmlp_s12.fb_distilled_in1k", pretrained=True)
    assert same_weights(again, weights["resmlp_12_dist.pth"]) and server.requests == ["resmlp_12_dist.pth"]


def test_bare_name_takes_the_first_tag_and_dino_loads_as_a_backbone(zoo):
    _, weights = zoo
    assert same_weights(create_model("resmlp_s12", pretrained=True), weights["resmlp_12_no_dist.pth"])
    backbone = create_model("resmlp_s12.fb_dino", pretrained=True)
    assert backbone.num_classes == 0 and same_weights(backbone, weights["resmlp_12_dino.pth"], skip_head=True)
    fine_tune = create_model("resmlp_s12.fb_dino", pretrained=True, num_classes=10)
    assert fine_tune.head.out_features == 10


def test_deit_hub_lines_work_with_only_the_repository_changed(zoo):
    _, weights = zoo
    dist = torch.hub.load(str(REPO), "resmlp_12", source="local", pretrained=True, dist=True)
    assert same_weights(dist, weights["resmlp_12_dist.pth"])
    dino = torch.hub.load(str(REPO), "resmlp_12", source="local", pretrained=True, dino=True)
    assert same_weights(dino, weights["resmlp_12_dino.pth"], skip_head=True)
    ours = torch.hub.load(str(REPO), "resmlp_s12", source="local", pretrained=True, tag="fb_in1k")
    assert same_weights(ours, weights["resmlp_12_no_dist.pth"])
    with pytest.raises(ValueError, match="at most one"):
        torch.hub.load(str(REPO), "resmlpB_24", source="local", dist=True, in_22k=True)


def test_timm_create_model_downloads_through_our_zoo(zoo):
    _, weights = zoo
    model = timm.create_model("resmlp_s12.fb_in1k", pretrained=True)
    assert isinstance(model, resmlp.ResMLP) and same_weights(model, weights["resmlp_12_no_dist.pth"])
    assert "state_dict" not in model.pretrained_cfg and model.pretrained_cfg["tag"] == "fb_in1k"
    # timm's own adaptation of pretrained weights: one input channel, a new classifier.
    grey = timm.create_model("resmlp_s12.fb_distilled_in1k", pretrained=True, in_chans=1, num_classes=5)
    assert grey.patch_embed.proj.weight.shape[1] == 1 and grey.head.out_features == 5
    features = timm.create_model("resmlp_s12.fb_dino", pretrained=True, features_only=True)
    assert len(features(torch.randn(1, 3, 224, 224))) == 3


def test_checkpoint_argument_accepts_a_tag(zoo):
    _, weights = zoo
    model = create_model("resmlp_s12", checkpoint="resmlp_s12.fb_in1k")
    assert same_weights(model, weights["resmlp_12_no_dist.pth"])
    state_dict, _ = resmlp.read_checkpoint(resmlp.zoo.resolve_checkpoint("resmlp_s12.fb_dino"))
    assert "blocks.0.token_mix.op.weight" in state_dict


def test_interrupted_download_leaves_nothing_that_loads(zoo):
    server, weights = zoo
    server.truncate.add("resmlp_12_no_dist.pth")
    with pytest.raises(WeightsUnavailable, match="stopped after .* bytes"):
        create_model("resmlp_s12.fb_in1k", pretrained=True)
    assert not any(cache_dir().iterdir())  # no partial, no short file
    server.truncate.clear()
    assert same_weights(create_model("resmlp_s12.fb_in1k", pretrained=True), weights["resmlp_12_no_dist.pth"])


def test_server_down_and_empty_cache_is_one_clear_error(zoo):
    server, _ = zoo
    server.stop()
    with pytest.raises(WeightsUnavailable) as info:
        create_model("resmlp_s12.fb_in1k", pretrained=True)
    message = str(info.value)
    assert "resmlp_12_no_dist.pth" in message and server.url + "resmlp_12_no_dist.pth" in message
    assert str(cache_dir()) in message and "RESMLP_WEIGHTS_URL" in message and "checkpoint=PATH" in message
    assert "\n" not in message


def test_unknown_tag_lists_the_known_ones():
    with pytest.raises(WeightsUnavailable, match=r"resmlp_s12 has fb_in1k, fb_distilled_in1k, fb_dino\); known:"):
        create_model("resmlp_s12.fb_in21k", pretrained=True)
    with pytest.raises(WeightsUnavailable, match="resmlp_tiny has none released"):
        create_model("resmlp_tiny", pretrained=True)


def test_checksum_is_verified_when_known(zoo):
    server, _ = zoo
    server.files["mirror.pth"] = b"released bytes"
    good = hashlib.sha256(b"released bytes").hexdigest()
    with pytest.raises(WeightsUnavailable, match="SHA-256"):
        fetch(Weights("resmlp_s12", "x", "mirror.pth", sha256="0" * 64), progress=False)
    assert not (cache_dir() / "mirror.pth").exists()
    assert (
        fetch(Weights("resmlp_s12", "x", "mirror.pth", sha256=good), progress=False).read_bytes() == b"released bytes"
    )


def test_list_pretrained_reports_the_papers_numbers():
    rows = dict(resmlp.list_pretrained())
    assert rows["resmlp_s12.fb_in1k"] == "top-1 76.6" and rows["resmlp_b24_8.fb_in22k_ft_in1k"] == "top-1 84.4"
    assert rows["resmlp_s24.fb_dino"] == "k-NN 69.4, linear 72.8" and len(rows) == 11


def test_task_commands_accept_a_tag(zoo, tmp_path):
    """ssl_dino.knn and vision.evaluate take ``--checkpoint resmlp_s12.fb_dino``: the tag is fetched through the zoo.

    To keep the test fast the server publishes, under the released DINO name, a small model in our own format (its
    config inside); what is tested is that the command resolves the tag, downloads and loads the file.
    """
    from accelerate.state import AcceleratorState

    from ssl_dino import knn

    server, _ = zoo
    torch.manual_seed(0)
    resmlp.save_model(create_model("resmlp_tiny", num_classes=0), tmp_path / "small.pth")
    server.files["resmlp_12_dino.pth"] = (tmp_path / "small.pth").read_bytes()
    results = knn.main(["--checkpoint", "resmlp_s12.fb_dino", "--data", "digits", "--nb-knn", "20"])
    AcceleratorState._reset_state(reset_partial_state=True)
    assert "resmlp_12_dino.pth" in server.requests and (cache_dir() / "resmlp_12_dino.pth").is_file()
    assert results
