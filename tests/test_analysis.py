"""Receptive fields and output sizes, against values worked out by hand."""
import paddle
import pytest
from paddle import nn

from paddle_cnn import analysis, nets


def test_effective_kernel_of_dilated_kernels():
    assert analysis.effective_kernel(3, 1) == 3
    assert analysis.effective_kernel(3, 2) == 5
    assert analysis.effective_kernel(3, 4) == 9
    assert analysis.effective_kernel(5, 3) == 13


# Hand-worked, layer by layer: rf_out = rf_in + (k_eff - 1) * jump, jump *= stride.
# standard: conv3 -> 3 (j1); pool2 -> 4 (j2); conv3 -> 4 + 2*2 = 8; pool2 -> 8 + 1*2 = 10 (j4)
# dilated:  conv3 r2 (k_eff 5) -> 5; pool2 -> 6 (j2); conv3 r2 -> 6 + 4*2 = 14; pool2 -> 16 (j4)
@pytest.mark.parametrize("name, conv_pool_fields, final", [
    ("standard_cnn", [3, 4, 8, 10], 10),
    ("dilated_cnn", [5, 6, 14, 16], 16),
    # lenet: conv5 -> 5; pool2 -> 6 (j2); conv5 -> 6 + 4*2 = 14; pool2 -> 16
    ("lenet", [5, 6, 14, 16], 16),
    # lenet_subclassed: conv3 -> 3; maxpool2 -> 4 (j2); conv5 -> 4 + 4*2 = 12; maxpool2 -> 14
    ("lenet_subclassed", [3, 4, 12, 14], 14),
])
def test_receptive_fields_of_seed_nets(name, conv_pool_fields, final):
    net = nets.create(name)
    records = analysis.layer_table(net, (1, 28, 28))
    got = [r.receptive_field for r in records if r.type in ("Conv2D", "AvgPool2D", "MaxPool2D")]
    assert got == [(f, f) for f in conv_pool_fields]
    assert analysis.receptive_field(net, (1, 28, 28)) == (final, final)


def test_layer_table_shapes_and_params_of_dilated_cnn():
    records = analysis.layer_table(nets.create("dilated_cnn"), (1, 28, 28))
    assert [r.output_shape for r in records[:6]] == [
        (16, 26, 26), (16, 26, 26), (16, 13, 13), (32, 9, 9), (32, 9, 9), (32, 4, 4)]
    assert records[6].type == "Flatten" and records[6].receptive_field is None
    assert sum(r.params for r in records) == 170_314


def test_activations_keep_the_field_and_strides_multiply_the_jump():
    net = nn.Sequential(nn.Conv2D(1, 2, 3, stride=2), nn.ReLU(), nn.Conv2D(2, 2, 3, stride=2), nn.BatchNorm2D(2))
    records = analysis.layer_table(net, (1, 33, 33))
    # conv3 s2 -> 3 (j2); relu keeps; conv3 s2 -> 3 + 2*2 = 7 (j4); batchnorm keeps
    assert [r.receptive_field for r in records] == [(3, 3), (3, 3), (7, 7), (7, 7)]
    assert records[-1].jump == (4, 4)


class _Residual(nn.Layer):
    """conv3 then a residual block of two conv3s: the add is outside any layer."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2D(1, 4, 3, padding=1)
        self.a = nn.Conv2D(4, 4, 3, padding=1)
        self.b = nn.Conv2D(4, 4, 3, padding=1)
        self.head = nn.Conv2D(4, 4, 1)

    def forward(self, x):
        x = self.stem(x)
        return self.head(x + self.b(self.a(x)))


def test_field_after_a_residual_add_is_the_larger_branch():
    records = analysis.layer_table(_Residual(), (1, 16, 16))
    # stem 3; a 5; b 7; the add's field is max(3, 7) = 7; a 1x1 head keeps 7.
    assert [r.receptive_field for r in records] == [(3, 3), (5, 5), (7, 7), (7, 7)]


def test_global_adaptive_pool_covers_the_whole_map():
    net = nn.Sequential(nn.Conv2D(1, 2, 3), nn.AdaptiveAvgPool2D(1))
    records = analysis.layer_table(net, (1, 10, 10))
    # conv3 on 10x10 -> 8x8 map with field 3; pooling all 8 positions adds 7: field 10.
    assert records[-1].receptive_field == (10, 10)


def test_format_table_lists_every_layer_and_the_total():
    text = analysis.format_table(analysis.layer_table(nets.create("standard_cnn"), (1, 28, 28)))
    assert "10x10" in text and "total params: 334,154" in text and "2,263,050 FLOPs" in text
    assert len(text.splitlines()) == 1 + 1 + 12 + 1 + 2


def test_layer_table_restores_training_mode():
    net = nets.create("lenet")
    net.train()
    analysis.layer_table(net, (1, 28, 28))
    assert net.training
    assert paddle.in_dynamic_mode()
