"""The one model definition: frozen ResNet-50 backbone, trainable head, strict and clear loading."""

from __future__ import annotations

import urllib.error

import pytest
import torch

from bincount.model.network import (
    ModelConfig,
    ModelMismatchError,
    PretrainedWeightsUnavailable,
    build_model,
    load_model,
    save_model,
)


@pytest.fixture(scope="module")
def net():
    return build_model(ModelConfig(), pretrained=False)


def test_only_the_head_trains(net) -> None:
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    assert net.head.out_features == 5


def test_frozen_backbone_stays_in_eval_mode(net) -> None:
    net.train()
    assert net.training and net.head.training
    assert not net.backbone.training, "BatchNorm statistics of a frozen backbone must not drift"
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        first = net.backbone(x)
        net(x)
        assert torch.equal(first, net.backbone(x))


def test_mlp_head_is_a_setting() -> None:
    model = build_model(ModelConfig(head="mlp", hidden=64), pretrained=False)
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 5)


def test_unknown_head_is_refused() -> None:
    with pytest.raises(ValueError, match="head must be one of linear, mlp"):
        ModelConfig(head="transformer")


def test_pretrained_without_internet_fails_with_advice(monkeypatch) -> None:
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(PretrainedWeightsUnavailable, match="--pretrained false"):
        build_model(pretrained=True)


def test_save_and_load_round_trip(net, tmp_path) -> None:
    save_model(net, ModelConfig(), tmp_path)
    loaded = load_model(tmp_path)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(net.eval()(x), loaded(x))


def test_wrong_class_count_fails_at_load_with_the_shapes(net, tmp_path) -> None:
    save_model(net, ModelConfig(), tmp_path)
    ModelConfig(num_classes=4).save(tmp_path)
    with pytest.raises(ModelMismatchError, match=r"head.weight: \(5, 2048\) in file, \(4, 2048\) in network"):
        load_model(tmp_path)


def test_wrong_head_fails_at_load_with_the_keys(net, tmp_path) -> None:
    save_model(net, ModelConfig(), tmp_path)
    ModelConfig(head="mlp").save(tmp_path)
    with pytest.raises(ModelMismatchError, match=r"missing keys: head\.0\.bias"):
        load_model(tmp_path)


def test_not_a_state_dict_fails_clearly(tmp_path) -> None:
    (tmp_path / "model.pth").write_bytes(b"not a pickle")
    with pytest.raises(ModelMismatchError, match="not a readable PyTorch state dict"):
        load_model(tmp_path)
    (tmp_path / "model.pth").unlink()
    with pytest.raises(FileNotFoundError, match=r"no model\.pth"):
        load_model(tmp_path)
