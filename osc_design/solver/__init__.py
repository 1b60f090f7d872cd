"""Optimized separable convolution (OSC): an exact design optimizer with optimality certificates.

Everything about OSC's internals is **reconstructed** (``papers.md`` section 1: only the abstracts'
asymptotic claims ``O(C^{3/2} K)`` and ``O(C log(C K^2))`` are verified; the chain model, the coverage
conditions, the constant 2 and ``N* = ln(C K^2)`` are derivations). The families ``osc-2`` and ``osc``
(registered in :mod:`osc_design.osc_families`, built with :func:`solve`) say so with
``certainty="reconstructed"``.

Model
-----
A design for a target convolution ``C_in -> C_out``, kernel ``Kh x Kw``, stride ``(sh, sw)``, padding
``(ph, pw)`` is a chain of ``N`` grouped convolutions. Stage ``i`` maps ``C_{i-1} -> C_i`` channels
(``C_0 = C_in``, ``C_N = C_out``; internal widths ``C_out`` unless ``widths`` says otherwise) with
``g_i`` groups dividing both, fan-in ``n_i = C_{i-1} / g_i``, a kernel ``kh_i x kw_i`` (rectangular
unless ``square_only``), a dilation (1 unless ``dilation=True``) and, on exactly one stage when the
target is strided, the stride. Between consecutive stages sits a ShuffleNet channel shuffle with the
previous stage's group count (a free permutation; left out where it is the identity or the next
stage has one group). Weights without bias::

    params = sum_i C_i * n_i * kh_i * kw_i            (= sum_i C_{i-1} C_i kh_i kw_i / g_i)
    macs   = sum_i params_i * H_i * W_i               (H_i x W_i: output grid of stage i)

A design is *valid* only if :func:`osc_design.coverage.coverage` proves full volumetric coverage:
every output channel depends on every input channel at every tap of the target window.

Channel reach. With these shuffles every output channel of stage ``i`` depends on exactly
``min(C_in, n_1 * ... * n_i)`` input channels. This was checked while the module was written for
every chain of up to three stages with ``C_in, C_out <= 24`` and internal widths ``C_out``, for full
reach whenever ``prod n_i >= C_in`` on every such chain of up to four stages, and on 30,000 random
chains of up to five stages with arbitrary widths up to 30; every returned design is verified again.
Reach can never exceed the product of fan-ins, so ``prod_i n_i >= C_in`` is necessary *and*
sufficient, whatever the (prime, odd, unequal) channel counts: the divisibility constraints enter
only through the allowed fan-ins.

Spatial reach, per axis. A stage with kernel ``k`` and tap step ``delta`` (its dilation, times the
stride for stages after the strided one, in input pixels) adds the offsets ``delta * {0..k-1}``; the
footprint of the chain is the Minkowski sum. The searched space keeps every prefix footprint gap-free
("mixed-radix digits in chain order": ``delta <= R + 1`` where ``R`` is the span so far), so the
footprint is the interval ``{0..R}`` and a stage takes ``R`` to ``R + delta (k - 1)``. Without
dilation ``delta`` is 1 (``s`` after the stride) and spans simply add: ``sum_i (k_i - 1) + 1 >= K``.
With dilation they multiply: ``{0,1,2} + 3*{0,1,2} = {0..8}``: ``R + 1`` grows by up to the factor
``k``. Padding is not searched. Every stage pads symmetrically, so the output size equals the
target's for every input size only if the footprint is centred on the target window, which forces
``R = K - 1 (mod 2)``; the padding is assigned by a fixed rule: cumulative padding
``max(0, floor(R / 2) + p - floor((K - 1) / 2))`` before the stride (``R``: span so far),
``floor(B / 2)`` coarse pixels after it (``B``: coarse span so far), and the strided stage takes the
rest. MACs are exact for that rule. Along an axis without dilation, prefix gaps can never be filled
later (all later steps are multiples of the stride), so the gap-free rule costs nothing there. With
dilation (``params``, no stride, internal widths ``C_out``) the mixed-radix order is an order of the
stages in which the ``C_in -> C_out`` stage may take any place, so a dilated first stage whose gaps
later stages fill is in the space (``32 -> 8`` at ``13 x 13``: ``2x1`` at dilation 6, then ``7x13``:
1,240 params). The design is built with that stage first and the others in the programme's order,
paddings by the same rule along the chain as built; with an input size, if that order would leave an
intermediate map empty, the programme's own order is built when ``C_in = C_out`` (it checked every
map), else the whole padding goes on the first stage (every map is then at least the output). The
other dilated spaces (a stride, other widths, MACs) keep the gap-free rule in chain order, which
excludes a first stage filled in by a *later* stage of smaller step.

The search
----------
An exact dynamic programme over chain prefixes. A state is ``(channel reach r, per-axis footprint
state, stride phase)``; the per-axis state is the span ``R`` while it is below ``T = max(K - 1, 1)``
and only its parity above (further growth cannot matter there), plus, after the stride, the parity of
the coarse span, the promised final parity and the strided stage's output size. Every design of the
space is one path; a stage's cost depends only on its transition, so the cheapest accepting state is
optimal. Prunings that keep it exact:

1. Per spatial state, entries are Pareto-filtered over (reach, cost): more reach never hurts.
2. Branch and bound: a state is dropped when its cost plus a relaxation bound for the rest (below)
   exceeds an upper bound; the upper bound grows (from the certificate's bound) until a design is
   found, and any design within the bound survives, so the first design found is optimal. For
   ``params`` with dilation or a stride, the optimum of a smaller space (no dilation; the stride on
   the last stage, i.e. the unstrided chain) is a design of this one and caps the upper bound.
3. ``params`` without dilation, rectangular kernels: along an axis all stages on the same side of the
   stride have the same tap step, so the cost is linear in each of their kernel sizes for fixed
   fan-ins; moving a span to the stage with the smallest weight never costs more. Hence at most one
   stage per axis and stride phase has a kernel larger than 1, and the span before the stride is one
   that a single later stage completes exactly (an exchange argument, not a heuristic). Square
   kernels (cost ``k^2``, convex) and the MAC objectives (border effects) enumerate all spans.
4. ``params`` with dilation: from span ``R`` a kernel ``k`` may take any step ``1..R+1``; per parity
   only the largest span below ``T`` and the smallest at or above it are kept, and a state with at
   least the reach and, per axis, at least the span of the same parity at no higher cost dominates
   (every completion of the weaker state works from it: same kernels and steps, steps stay within
   ``span + 1``, the final span grows by an even amount).
5. Dilation with full coverage: the bound for the rest is an integer one. Every later stage has an
   integer volume ``n kh kw >= 1``; their product must reach ``ceil(C_in / r)`` (raised to the next
   product of the primes of the widths, the only ones a fan-in can have) times, per axis,
   ``ceil(K / (R + 1))`` (a footprint of ``R + 1`` points grows at most by the factor ``k``). The least
   sum of at most ``left`` integers with that product is reached by balanced values ``q, q + 1``. All
   costs are multiples of the widths' gcd, so the passes' upper bounds start at the integer bound of
   the empty chain and rise by one such unit (later by 2 % and 20 %), capped by the undilated optimum.

Splitting (the reordered dilated space). With dilation, ``params``, no stride, internal widths ``C_out``,
full coverage and rectangular kernels, two closed searches (:mod:`~osc_design.solver.direct`) replace the
programme. A stage of volume ``n kh kw`` with two factors above 1 costs at least their sum (``a b >= a + b``
for ``a, b >= 2``, equal only for ``2 * 2``), and splitting it into a ``1 x 1`` stage of fan-in ``n`` and
depthwise ``kh x 1`` and ``1 x kw`` stages (same dilations and place in each axis's mixed-radix order)
keeps the reach and both footprints. So over any number of stages the optimum is a cheapest product of
fan-ins reaching ``C_in`` (a shortest path over the factor still missing, ``ceil(C_in / r)``) plus, per
axis, a cheapest kernel sequence covering the window (a shortest path over the footprint automaton);
the designs of that cost are those chains with factors of 2 of different kinds sharing a stage, and the
one with the fewest stages is returned when it fits the stage cap (else the programme searches the
capped space). With at most two stages, the cheapest second stage for a given first one is the
smallest possible factor of each kind (channel, height, width) independently, so the first stages
are enumerated. Both agree with the programme (value and stage count) and with brute forces over
small chains in ``tests/test_solver_direct.py``. The free-stage optimum holds beyond the searched
space: a footprint has at most ``prod k`` points and, with odd kernels only, an even span, and for
every supported kernel side the cheapest gap-free sequence of an axis meets that counting bound, so
no chain with these widths (gaps or per-axis orders allowed) is cheaper.

Stage cap. A stage helps only if it multiplies the channel reach by ``n >= 2`` or grows a spatial
span. Besides the first stage, at most ``ceil(log2 C_in)`` stages of an optimal design carry a fan-in
``n >= 2`` (else dropping the smallest one keeps ``prod n >= C_in`` at lower cost), and a stage that
does neither is a removable depthwise ``1 x 1``. The default cap (:func:`stage_cap`) is
``ceil(log2 C_in) + 1`` plus, per axis, 1 spatial stage without dilation (2 with a stride: one per
phase, by 3.), ``ceil(log2 K) + 1`` with dilation, ``ceil((K_max - 1) / 2)`` for square kernels
without dilation, plus 1 for the strided stage. The certificate's ``all_n`` reports whether the
relaxation proves that no chain with more stages is cheaper.

Lower bounds (certificates)
---------------------------
Write ``v_i = n_i * kh_i * kw_i`` (the stage's "volume"). Along an axis the footprint has at most
``prod_i k_i`` offsets and must contain the ``K`` window taps, and ``prod_i n_i >= C_in``, so
``prod_i v_i >= V = C_in * Kh * Kw`` for every valid design, with or without dilation or stride
(``C_in * max(Kh, Kw)^2`` for square kernels; ``lambda`` times ``C_in Kh Kw`` when only a fraction
``lambda`` of the volume must be covered, since the covered fraction is
``(reach / C_in) * (taps_h / Kh) * (taps_w / Kw)``). With stage widths ``C_i`` and
``v_i >= L_i = C_{i-1} / gcd(C_{i-1}, C_i)`` (the smallest fan-in a stage can have), the minimum of
``sum_i C_i v_i`` under ``prod_i v_i >= V`` (weighted AM-GM; water-filling when some ``v_i`` sit at
their floor) bounds every ``N``-stage design. For equal widths ``C`` it is ``N C V^(1/N)``
when ``V^(1/N) >= 1``: for ``N = 2``, ``2 C_out sqrt(C_in Kh Kw)``, which is the paper's
``2 C^{3/2} K`` for ``C_in = C_out = C``, ``K x K``. Minimising ``N C (C K^2)^{1/N}`` over real
``N`` gives ``N* = ln(C K^2)`` and ``e C ln(C K^2)`` (the abstract's ``O(C log(C K^2))``); the
certificate keeps it as ``relaxation`` and uses the minimum over the allowed *integer* ``N`` as
``bound``.

Without dilation (full coverage) spans only add: along an axis ``sum (k_i - 1)`` over stages before
the stride plus ``s * sum (k_i - 1)`` over stages after it must reach ``K - 1``. For fixed fan-ins
the cost is linear in each ``k_i``, so in the relaxation one stage takes the whole span, with kernel
weight at least ``1 + (K - 1) / s``, alone or shared with the other axis. Water-filling the fan-ins
``n_i >= L_i`` against these weights (``prod n_i >= C_in``) gives a second valid bound; the larger
one is used. This is where integer reality and the lack of dilation bite: a spatial stage cannot have a
fan-in below 1, so for large ``K`` a design pays about ``C_out (Kh + Kw)`` for space plus
``e C_out ln C_in`` for channels, far above ``e C ln(C K^2)``; with dilation the integer optimum
comes within a few percent of the product bound. The remaining gaps come from divisibility (fan-ins
must divide the widths, so ``n_i a_i`` cannot all equal ``e``) and from integer kernels and ``N``.

For ``macs`` every stage costs its parameters times its output area, at least ``(Ho - 1)(Wo - 1)``
under the padding rule, so the params bound times that area is valid. For ``macs_valid`` (padding taps
not counted) a tap may miss the image for most outputs of a small map, so no such factor holds in
general and the certificate's bound is the trivial 0.

Worked example: 256 -> 256, K = 7
---------------------------------
``V = 256 * 49 = 12,544``. Two stages: the bound is ``2 * 256 * sqrt(12,544) = 57,344`` and the
solver finds ``7x1`` (16 groups, fan-in 16), shuffle, ``1x7`` (16 groups): ``256 * 16 * 7 * 2 =
57,344``, gap 0 %. Free ``N`` without dilation: ``7x1`` and ``1x7`` depthwise, then four ``1x1``
stages of fan-in 4: ``256 * (7 + 7 + 4 * 4) = 7,680`` in 6 stages; the additive bound is 7,454.5
(gap 2.9 %), far above ``e C ln(C K^2) = 6,567``: the spatial stages alone cost ``256 * 14``. With
dilation: ``4x1``, ``1x4``, then ``2x2`` at dilation 3 (``{0..3} + 3 * {0, 1} = {0..6}``) and four
``1x1`` of fan-in 4: ``256 * (4 + 4 + 4 + 16) = 7,168`` in 7 stages, bound 6,574.5 (gap 8.3 %: the
fan-ins are powers of two, so no stage reaches the ideal volume ``e``).
"

Modules
-------
:mod:`~osc_design.solver.space` (the searched space, validated once), :mod:`~osc_design.solver.axis`
(the per-axis footprint automaton), :mod:`~osc_design.solver.search` (the dynamic programme),
:mod:`~osc_design.solver.direct` (the closed searches of the reordered dilated space),
:mod:`~osc_design.solver.bounds` (relaxations and water-filling), :mod:`~osc_design.solver.chain`
(stages, the spec they build, the coverage check), :mod:`~osc_design.solver.result` (solutions and
certificates), :mod:`~osc_design.solver.api` (:func:`solve`, :func:`pareto_front`).
"""

from .api import pareto_front, solve
from .bounds import lower_bound
from .chain import Stage
from .result import Certificate, Solution
from .space import OBJECTIVES, stage_cap

__all__ = ["Stage", "Certificate", "Solution", "solve", "pareto_front", "stage_cap", "lower_bound", "OBJECTIVES"]
