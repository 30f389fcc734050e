"""Named architectures: settings for the builders, a few lines each."""

from __future__ import annotations

from convlab.models import register_architecture

# "PW1" of the course exercises: three 5x5 conv + max-pool stages, FC 1000, FC 10.
register_architecture(
    "pw1", "cnn", "conv32-5 / pool / conv64-5 / pool / conv64-5 / pool / fc1000 / fc",
    stages=[
        {"channels": 32, "kernel": 5, "padding": 2, "pool": "max"},
        {"channels": 64, "kernel": 5, "padding": 2, "pool": "max"},
        {"channels": 64, "kernel": 5, "padding": 2, "pool": "max"},
    ],
    head={"type": "flatten", "hidden": [1000]},
)

# LeCun et al. 1998: tanh, average ("sub-sampling") pooling, FC 120 / 84. The first conv
# pads by 2 so 28x28 MNIST sees the 32x32 field of the original.
register_architecture(
    "lenet5", "cnn", "LeCun 1998: conv6-5 / avgpool / conv16-5 / avgpool / fc120 / fc84",
    stages=[
        {"channels": 6, "kernel": 5, "padding": 2, "pool": "avg", "activation": "tanh"},
        {"channels": 16, "kernel": 5, "padding": "valid", "pool": "avg", "activation": "tanh"},
    ],
    head={"type": "flatten", "hidden": [120, 84], "activation": "tanh"},
)

register_architecture(
    "mlp-256x2", "mlp", "784-256-256-10 fully connected", hidden=[256, 256],
)

# Dilation 1, 2, 4, 8 of 3x3 kernels: a 31x31 receptive field with no pooling, so the
# whole 28x28 image (or its permutation) is in view of every output unit.
register_architecture(
    "dilated-cnn", "cnn", "3x3 convs with dilation 1/2/4/8, no pooling, global-pool head",
    stages=[
        {"channels": 32, "dilation": 1, "pool": "none", "batch_norm": True},
        {"channels": 32, "dilation": 2, "pool": "none", "batch_norm": True},
        {"channels": 64, "dilation": 4, "pool": "none", "batch_norm": True},
        {"channels": 64, "dilation": 8, "pool": "none", "batch_norm": True},
    ],
    head={"type": "gap"},
)

# The fast MNIST recipe's network (mnist-quick: ~99.1% test accuracy in one epoch, 6.9 s
# for the whole command on a 2-core CPU; benchmarks/RESULTS.md). Cheap where the
# images are large: the first conv has stride 2 and no padding (28 -> 12, no pooling), the
# second runs on 12x12 -> 8x8 and pools to 4x4; most of the capacity is in the fc256 layer,
# which costs little per image. 16/32 channels: narrower first convs are no faster here
# (oneDNN), wider ones cost time without gaining accuracy in one epoch.
register_architecture(
    "mnist-fast", "cnn", "conv16-5/2 + BN, conv32-5 + BN + max-pool, fc256: fast on CPU",
    stages=[
        {"channels": 16, "kernel": 5, "stride": 2, "padding": "valid", "pool": "none",
         "batch_norm": True},
        {"channels": 32, "kernel": 5, "padding": "valid", "batch_norm": True},
    ],
    head={"type": "flatten", "hidden": [256]},
)
