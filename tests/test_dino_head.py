"""DINOHead shapes, the weight-normalised last layer (norm_last_layer), reference state dicts, last-layer freezing."""

import pytest
import torch

from ssl_dino.head import DINOHead, cancel_last_layer_grads


def small_head(**kwargs) -> DINOHead:
    return DINOHead(12, 40, hidden_dim=24, bottleneck_dim=8, **kwargs)


def prototype_norms(head: DINOHead) -> torch.Tensor:
    return head.last_layer.weight.norm(dim=1)


@pytest.mark.parametrize("nlayers", [1, 2, 3])
@pytest.mark.parametrize("use_bn", [False, True])
def test_output_shape(nlayers, use_bn):
    head = small_head(nlayers=nlayers, use_bn=use_bn)
    assert head(torch.randn(5, 12)).shape == (5, 40)
    linears = [m for m in head.mlp.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == nlayers
    assert linears[-1].out_features == 8


def test_defaults_are_the_reference():
    head = DINOHead(384)
    assert head.out_dim == 65536
    assert head.last_layer.weight.shape == (65536, 256)
    assert head.mlp[0].out_features == 2048 and head.mlp[-1].out_features == 256
    assert isinstance(head.mlp[1], torch.nn.GELU)
    assert head.mlp[0].weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert head.last_layer.parametrizations.weight.original1.shape == (65536, 256)


def test_norm_last_layer_fixes_unit_prototypes_through_training():
    torch.manual_seed(0)
    head = small_head(norm_last_layer=True)
    gain = head.last_layer.parametrizations.weight.original0
    assert not gain.requires_grad
    torch.testing.assert_close(prototype_norms(head), torch.ones(40))
    optimizer = torch.optim.SGD([p for p in head.parameters() if p.requires_grad], lr=1.0)
    head(torch.randn(6, 12)).pow(2).sum().backward()
    optimizer.step()
    torch.testing.assert_close(prototype_norms(head), torch.ones(40))
    # Unit input (after L2 normalisation) against unit prototypes: every score is a cosine.
    assert head(torch.randn(6, 12)).abs().max() <= 1.0 + 1e-5


def test_without_norm_last_layer_the_gain_learns():
    torch.manual_seed(0)
    head = small_head(norm_last_layer=False)
    gain = head.last_layer.parametrizations.weight.original0
    assert gain.requires_grad
    torch.optim.SGD(head.parameters(), lr=1.0).zero_grad()
    head(torch.randn(6, 12)).pow(2).sum().backward()
    torch.optim.SGD(head.parameters(), lr=1.0).step()
    assert not torch.allclose(prototype_norms(head), torch.ones(40))


def test_reference_weight_g_weight_v_state_dict_loads():
    torch.manual_seed(0)
    source = small_head()
    state = source.state_dict()
    renamed = {
        k.replace("parametrizations.weight.original0", "weight_g").replace(
            "parametrizations.weight.original1", "weight_v"
        ): v
        for k, v in state.items()
    }
    assert "last_layer.weight_g" in renamed
    target = small_head()
    target.load_state_dict(renamed)
    x = torch.randn(3, 12)
    torch.testing.assert_close(target(x), source(x))


def test_cancel_last_layer_grads_freezes_only_the_prototypes():
    torch.manual_seed(0)
    head = small_head(norm_last_layer=False)
    before = {n: p.detach().clone() for n, p in head.named_parameters()}
    optimizer = torch.optim.AdamW(head.parameters(), lr=0.1, weight_decay=0.5)
    head(torch.randn(6, 12)).pow(2).sum().backward()
    assert cancel_last_layer_grads(head) == 2  # gain and direction
    optimizer.step()
    for name, param in head.named_parameters():
        changed = not torch.equal(param, before[name])
        assert changed != ("last_layer" in name), name


class ReferenceDINOHead(torch.nn.Module):
    """facebookresearch/dino vision_transformer.DINOHead (use_bn=False), with the old-style weight norm."""

    def __init__(self, in_dim, out_dim, norm_last_layer=True, nlayers=3, hidden_dim=2048, bottleneck_dim=256):
        super().__init__()
        layers = [torch.nn.Linear(in_dim, hidden_dim), torch.nn.GELU()]
        for _ in range(nlayers - 2):
            layers += [torch.nn.Linear(hidden_dim, hidden_dim), torch.nn.GELU()]
        layers.append(torch.nn.Linear(hidden_dim, bottleneck_dim))
        self.mlp = torch.nn.Sequential(*layers)
        with pytest.warns(FutureWarning):  # deprecated in torch, still what the reference uses
            self.last_layer = torch.nn.utils.weight_norm(torch.nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)
        if norm_last_layer:
            self.last_layer.weight_g.requires_grad = False

    def forward(self, x):
        x = self.mlp(x)
        x = torch.nn.functional.normalize(x, dim=-1, p=2)
        return self.last_layer(x)


@pytest.mark.parametrize("norm_last_layer", [True, False])
def test_same_function_and_gradients_as_the_reference_head(norm_last_layer):
    torch.manual_seed(0)
    reference = ReferenceDINOHead(12, 40, norm_last_layer=norm_last_layer, hidden_dim=24, bottleneck_dim=8)
    ours = small_head(norm_last_layer=norm_last_layer)
    ours.load_state_dict(reference.state_dict())  # weight_g / weight_v keys, mapped on load
    x = torch.randn(5, 12)
    torch.testing.assert_close(ours(x), reference(x))
    ours(x).pow(2).sum().backward()
    reference(x).pow(2).sum().backward()
    torch.testing.assert_close(
        ours.last_layer.parametrizations.weight.original1.grad, reference.last_layer.weight_v.grad
    )
    torch.testing.assert_close(ours.mlp[0].weight.grad, reference.mlp[0].weight.grad)
    assert (ours.last_layer.parametrizations.weight.original0.grad is None) == norm_last_layer
