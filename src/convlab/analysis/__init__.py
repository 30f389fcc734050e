"""Analysis toolkit: pure functions on models and layer arithmetic; no argument parsing.

==================  =====================================================================
summary             per-layer table of any nn.Module (shapes, params, RF, MACs) + renderers
receptive_field     analytic receptive fields (any module) and the gradient measurement
outsize             conv/pool output sizes: one layer, a chain, the inverse problem
conv_by_hand        a small 2-D convolution as printed sums of products, exact arithmetic
probe               linearity / shift-equivariance / invariance of operators and prefixes
equivariance        the shift/rotation experiment on images, with figures
affine              collapse an affine network into A x + b
budget              parameter-budget matching along one free dimension
==================  =====================================================================

The CLI (``convlab summary``, ``calc``, ``probe``, ``budget``) lives in
``convlab.commands.analysis`` and only parses, calls these and prints.
"""

from __future__ import annotations

from convlab.analysis.affine import AffineMap, linearize, make_linear_settings, save_affine
from convlab.analysis.budget import Candidate, apply_vary, count_params, match_params
from convlab.analysis.common import (
    AnalysisError,
    ResolvedModel,
    load_weights,
    parse_hw,
    parse_shape,
    resolve_model,
)
from convlab.analysis.conv_by_hand import NAMED_KERNELS, HandConv, conv_by_hand, parse_matrix
from convlab.analysis.equivariance import (
    EquivarianceResult,
    Transform,
    equivariance_experiment,
    save_figures,
    synthetic_image,
)
from convlab.analysis.outsize import (
    LayerSpec,
    out_size,
    parse_chain,
    run_chain,
    same_padding,
    solve,
)
from convlab.analysis.probe import (
    OPERATOR_NAMES,
    ProbeReport,
    layer_units,
    make_operator,
    model_prefix,
    probe_named,
    probe_operator,
    probe_prefix,
)
from convlab.analysis.receptive_field import (
    Field,
    compare_fields,
    empirical_field,
    receptive_fields,
)
from convlab.analysis.summary import LayerRow, ModelSummary, summarize

__all__ = [
    "NAMED_KERNELS", "OPERATOR_NAMES", "AffineMap", "AnalysisError", "Candidate",
    "EquivarianceResult", "Field", "HandConv", "LayerRow", "LayerSpec", "ModelSummary",
    "ProbeReport", "ResolvedModel", "Transform", "apply_vary", "compare_fields",
    "conv_by_hand", "count_params", "empirical_field", "equivariance_experiment",
    "layer_units", "linearize", "load_weights", "make_linear_settings", "make_operator",
    "match_params", "model_prefix", "out_size", "parse_chain", "parse_hw", "parse_matrix",
    "parse_shape", "probe_named", "probe_operator", "probe_prefix", "receptive_fields",
    "resolve_model", "run_chain", "same_padding", "save_affine", "save_figures", "solve",
    "summarize", "synthetic_image",
]
