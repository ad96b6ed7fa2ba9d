from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from restore.losses.perceptual import IMAGENET_MEAN, IMAGENET_STD, PerceptualLoss, hub_checkpoint, vgg_layer_names
from restore.losses.pixel import charbonnier_loss, l1_loss
from restore.registry import OptionValueError


def small_vgg16_state(dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Random weights for torchvision vgg16().features[:4] (conv1_1, relu1_1, conv1_2, relu1_2)."""
    g = torch.Generator().manual_seed(0)
    return {"0.weight": torch.randn(64, 3, 3, 3, generator=g).to(dtype) * 0.1,
            "0.bias": torch.randn(64, generator=g).to(dtype) * 0.1,
            "2.weight": torch.randn(64, 64, 3, 3, generator=g).to(dtype) * 0.05,
            "2.bias": torch.randn(64, generator=g).to(dtype) * 0.1}


@pytest.fixture
def small_weights(tmp_path: Path) -> Path:
    path = tmp_path / "vgg16_first_block.pth"
    torch.save(small_vgg16_state(), path)
    return path


@pytest.fixture
def empty_hub(tmp_path: Path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        yield tmp_path / "hub"
    finally:
        torch.hub.set_dir(old)


# ----------------------------------------------------------------------------------------------- layer names
@pytest.mark.parametrize("network,layer,index,convs,relu_x_1", [("vgg19", "conv5_4", 34, 16, [1, 6, 11, 20, 29]),
                                                                 ("vgg16", "conv5_3", 28, 13, [1, 6, 11, 18, 25])])
def test_layer_names_follow_torchvision_module_list(network, layer, index, convs, relu_x_1):
    with torch.device("meta"):
        features = getattr(torchvision.models, network)().features
    names = vgg_layer_names(network)
    assert len(names) == len(features)
    assert names.index(layer) == index and isinstance(features[index], torch.nn.Conv2d)
    assert isinstance(features[index + 1], torch.nn.ReLU) and names[index + 1] == "relu" + layer[4:]
    assert isinstance(features[index + 2], torch.nn.MaxPool2d) and names[index + 2] == "pool5" == names[-1]
    conv_idx = [i for i, m in enumerate(features) if isinstance(m, torch.nn.Conv2d)]
    assert [i for i, n in enumerate(names) if n.startswith("conv")] == conv_idx and len(conv_idx) == convs
    assert names[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert [names.index(f"relu{b}_1") for b in range(1, 6)] == relu_x_1  # SPADE's feature-matching layers


def test_bad_layer_name_did_you_mean():
    with pytest.raises(OptionValueError, match="'conv5_5' is not a vgg19 layer \\(did you mean 'conv5_4'\\?\\)"):
        PerceptualLoss("vgg19", layers={"conv5_5": 1.0})
    with pytest.raises(OptionValueError, match="'conv5_4' is not a vgg16 layer") as err:
        PerceptualLoss("vgg16", layers={"conv5_4": 1.0})
    assert err.value.key == "layers"
    with pytest.raises(OptionValueError, match="network must be one of vgg19, vgg16, got 'vgg18'"):
        PerceptualLoss("vgg18")
    with pytest.raises(OptionValueError, match="weight of 'conv1_1' must be a finite number >= 0"):
        PerceptualLoss("vgg16", layers={"conv1_1": -1.0})


# ----------------------------------------------------------------------------------------------- weights
def test_missing_weights_error_explains_the_offline_alternative(empty_hub, monkeypatch):
    import restore.losses.perceptual as perceptual

    path, url = hub_checkpoint("vgg19")
    assert path == empty_hub / "checkpoints" / "vgg19-dcbb9e9d.pth" and url.endswith("vgg19-dcbb9e9d.pth")
    tried = []

    def offline(u, p, timeout=30.0):  # what an offline machine does: the download raises
        tried.append(u)
        raise OSError("Network is unreachable")

    monkeypatch.setattr(perceptual, "_download", offline)
    with pytest.raises(FileNotFoundError) as err:
        PerceptualLoss()
    assert tried == [url]
    msg = str(err.value)
    for part in ("VGG19", str(path), "cannot download", "Network is unreachable",
                 "No ImageNet VGG19 is available offline",
                 "network: vgg16", "weights: ../shared/weights/vgg16_imagenet_features.pth", "conv5_3"):
        assert part in msg, part
    assert not path.parent.exists() or not any(path.parent.iterdir())  # nothing was downloaded
    with pytest.raises(FileNotFoundError, match=r"download: false"):
        PerceptualLoss(download=False)


def test_missing_weights_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="perceptual loss weights file not found: .*nope.pth"):
        PerceptualLoss("vgg16", weights=str(tmp_path / "nope.pth"))


def test_weights_from_the_local_hub_cache_are_used(empty_hub):
    """torchvision's checkpoint format (``features.N.weight`` plus classifier keys) found in the hub cache."""
    path, _ = hub_checkpoint("vgg16")
    path.parent.mkdir(parents=True)
    state = {f"features.{k}": v for k, v in small_vgg16_state().items()} | {"classifier.0.bias": torch.zeros(3)}
    torch.save(state, path)
    loss = PerceptualLoss("vgg16", layers={"conv1_2": 1.0})
    assert torch.equal(loss.vgg[2].weight, state["features.2.weight"])
    assert loss.weights_path == str(path)


@pytest.mark.parametrize("prefix", ["", "features."])
def test_weights_file_both_key_formats_and_float16_is_cast(tmp_path, prefix):
    state = small_vgg16_state(torch.float16)
    path = tmp_path / "w.pth"
    torch.save({prefix + k: v for k, v in state.items()}, path)
    loss = PerceptualLoss("vgg16", layers={"relu1_2": 1.0, "conv1_1": 0.5}, weights=str(path))
    assert len(loss.vgg) == 4  # truncated after relu1_2
    assert loss.vgg[0].weight.dtype == torch.float32
    assert torch.equal(loss.vgg[0].weight, state["0.weight"].float())


def test_weights_file_for_the_wrong_network_is_refused(tmp_path, small_weights):
    with pytest.raises(ValueError, match=r"not vgg16 feature weights up to conv2_1: missing keys 5.weight"):
        PerceptualLoss("vgg16", layers={"conv2_1": 1.0}, weights=str(small_weights))
    bad = tmp_path / "bad.pth"
    torch.save({"0.weight": torch.zeros(64, 1, 3, 3), "0.bias": torch.zeros(64)}, bad)
    with pytest.raises(ValueError, match=r"'0.weight' has shape \(64, 1, 3, 3\) but vgg16 needs \(64, 3, 3, 3\)"):
        PerceptualLoss("vgg16", layers={"conv1_1": 1.0}, weights=str(bad))


# ----------------------------------------------------------------------------------------------- behaviour
def test_features_are_taken_before_the_activation(small_weights):
    """conv1_1 is the raw convolution of the ImageNet-normalised input (an in-place ReLU would clobber it)."""
    torch.manual_seed(0)
    loss = PerceptualLoss("vgg16", layers={"conv1_1": 1.0, "relu1_1": 1.0, "conv1_2": 1.0}, weights=str(small_weights))
    x = torch.rand(2, 3, 8, 8)
    feats = loss.features(x)
    assert list(feats) == ["conv1_1", "relu1_1", "conv1_2"]
    state = small_vgg16_state()
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    conv1_1 = F.conv2d((x - mean) / std, state["0.weight"], state["0.bias"], padding=1)
    assert torch.allclose(feats["conv1_1"], conv1_1, atol=1e-5)
    assert (feats["conv1_1"] < 0).any()
    assert torch.allclose(feats["relu1_1"], F.relu(conv1_1), atol=1e-5)
    conv1_2 = F.conv2d(F.relu(conv1_1), state["2.weight"], state["2.bias"], padding=1)
    assert torch.allclose(feats["conv1_2"], conv1_2, atol=1e-4)
    with pytest.raises(ValueError, match="layer 'relu5_1' is deeper than this loss network, which ends at conv1_2"):
        loss.features(x, ["relu5_1"])


@pytest.mark.parametrize("criterion", ["l1", "l2"])
def test_loss_is_weighted_sum_of_feature_distances(small_weights, criterion):
    torch.manual_seed(0)
    layers = {"conv1_1": 2.0, "conv1_2": 0.5}
    loss = PerceptualLoss("vgg16", layers=layers, weights=str(small_weights), criterion=criterion)
    sr, hr = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    fs, fh = loss.features(sr), loss.features(hr)
    dist = (lambda a, b: (a - b).abs().mean()) if criterion == "l1" else (lambda a, b: (a - b).pow(2).mean())
    want = sum(w * dist(fs[n], fh[n]) for n, w in layers.items())
    assert torch.allclose(loss(sr, hr), want, rtol=1e-5)


def test_network_is_frozen_stays_in_eval_and_gradients_reach_the_input(small_weights):
    loss = PerceptualLoss("vgg16", layers={"conv1_2": 1.0}, weights=str(small_weights))
    assert not any(p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.training and not any(m.training for m in loss.modules())
    sr = torch.rand(1, 3, 8, 8, requires_grad=True)
    hr = torch.rand(1, 3, 8, 8, requires_grad=True)
    loss(sr, hr).backward()
    assert sr.grad is not None and sr.grad.abs().sum() > 0
    assert hr.grad is None  # target features carry no graph
    assert all(p.grad is None for p in loss.parameters())
    assert "mean" not in loss.state_dict()  # normalisation constants are not weights


def test_input_shape_errors(small_weights):
    loss = PerceptualLoss("vgg16", layers={"conv1_1": 1.0}, weights=str(small_weights))
    with pytest.raises(ValueError, match=r"sr has shape \(1, 3, 8, 8\) but hr has \(1, 3, 4, 4\)"):
        loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"expects \(N, 3, H, W\) RGB images, got shape \(1, 1, 8, 8\)"):
        loss(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))


def test_shared_imagenet_vgg16_loads_and_gives_real_features(shared):
    path = shared / "weights/vgg16_imagenet_features.pth"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    state = torch.load(path, map_location="cpu", weights_only=True)
    loss = PerceptualLoss("vgg16", weights=str(path))  # default layer conv5_3, the last conv: the whole network
    assert loss.layers == {"conv5_3": 1.0} and len(loss.vgg) == 29
    assert sum(p.numel() for p in loss.parameters()) == 14_714_688  # MANIFEST.md
    assert state["0.weight"].dtype == torch.float16
    assert torch.equal(loss.vgg[0].weight, state["0.weight"].float())
    assert torch.equal(loss.vgg[28].bias, state["28.bias"].float())
    torch.manual_seed(0)
    x = F.interpolate(torch.rand(1, 3, 8, 8), size=(64, 64), mode="bilinear", align_corners=False)
    x = (x + 0.2 * torch.rand_like(x)).clamp(0, 1)
    blurred = F.avg_pool2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), 5, stride=1)
    with torch.no_grad():
        assert loss(x, x).item() == 0.0
        d = loss(x, blurred).item()
    assert 0 < d < float("inf")


# ----------------------------------------------------------------------------------------------- pixel losses
def test_l1_and_charbonnier_against_hand_values():
    sr = torch.tensor([[[[0.0, 0.5], [1.0, 0.25]]]])
    hr = torch.tensor([[[[0.5, 0.5], [0.0, 1.0]]]])
    assert l1_loss(sr, hr).item() == pytest.approx((0.5 + 0 + 1 + 0.75) / 4)
    eps = 0.1
    want = sum((d * d + eps * eps) ** 0.5 for d in (0.5, 0.0, 1.0, 0.75)) / 4
    assert charbonnier_loss(sr, hr, eps=eps).item() == pytest.approx(want)
    x = torch.zeros(1, 1, 2, 2, requires_grad=True)
    charbonnier_loss(x, torch.zeros(1, 1, 2, 2)).backward()
    assert torch.equal(x.grad, torch.zeros_like(x))  # smooth at 0, unlike L1's subgradient


def test_pixel_losses_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match=r"l1_loss: the restored image has shape \(1, 3, 8, 8\) but the ground"):
        l1_loss(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="eps must be > 0"):
        charbonnier_loss(torch.rand(1, 3, 2, 2), torch.rand(1, 3, 2, 2), eps=0)
