"""Diffusion Tree Sampling (DTS) and Diffusion Tree Search (DTS*): tree search that reuses every rollout.

Jain, Sareen, Pedramfar & Ravanbakhsh 2025, "Diffusion Tree Sampling: Scalable inference-time
alignment of diffusion models" (arXiv 2506.20701). The learned reverse chain p_theta(x_{t-1} | x_t)
is Markov with horizon T, so its trajectories form a tree of depth T: a node is a noisy state, an
edge one stochastic denoising step. Every finished rollout sends its terminal reward back up its
path, so later rollouts start from where earlier ones found reward: nothing is thrown away.

Symbols (the paper's, and where they live here):

    T          tree depth = num_steps S; x_t (t = T .. 0) sits at grid level i = T - t
               (level 0 = x_T, the noisiest; level S = x_0, a leaf)
    x_{T+1}    the root: a dummy node (level -1) whose children are prior draws x_T ~ N(0, I)
    C(x_t)     the children of a node (``children``), at most ``max_children`` of them
    v̂(x_t)     the soft-value estimate of a node (``value``, reward units); v̂(x_0) = r(x_0)
    lam        λ: the target is p_theta(x_0) exp(λ r(x_0)), the Boltzmann policy is ∝ exp(λ v̂)
    V_t(x_t)   the soft value (1/λ) log E_{p_theta(x_{0:t-1} | x_t)}[exp(λ r(x_0))], which obeys the
               soft Bellman equation V_t(x_t) = (1/λ) log E_{p_theta(x_{t-1} | x_t)}[exp(λ V_{t-1})]

One pass of the paper's loop over one tree:

1. selection: from the root, while the node has its max_children children, move to a child c
   with probability ∝ exp(λ v̂(c)) (DTS, ``select='boltzmann'``) or to argmax_c v̂(c) (DTS*,
   ``select='greedy'``);
2. expansion: at the first node with fewer children (t > 0), draw a new child x_{t-1} ~ p_theta(. | x_t);
3. rollout: denoise the new child down to x_0 with p_theta, every state appended to the tree;
4. backup: v̂(x_0) = r(x_0), then up the path v̂(x_t) = (1/λ) log (1/|C(x_t)|) Σ_{c ∈ C(x_t)} exp(λ v̂(c)),
   the soft Bellman equation with its expectation replaced by the mean over the children (i.i.d.
   draws of p_theta(. | x_t)): the log-mean-exp of the children's values.

After the search DTS returns draws of the tree: descents from the root that pick each child with
probability ∝ exp(λ v̂(c)), down to a leaf. Unrolling the backup, such a draw returns leaf l with
probability exp(λ r(l)) Π_{x on its path} 1/|C(x)|, normalised: self-normalised importance sampling
of p_theta exp(λ r) over the leaves, each leaf standing for the share of p_theta it was drawn from.
Its error shrinks as the tree grows, so more budget gives better samples (an anytime sampler).
DTS* searches: it returns the highest-reward leaf the tree holds.

Batched as no reference implementation is: B prompt rows, one tree each, and K = n_particles
*slots* per tree, each a rollout in flight. Every model call evaluates all B * K slots at their own
levels (one NFE per running slot), so each call is a full batch. A slot whose rollout reaches x_0
is scored, backed up and, in the same iteration, selects its next expansion. Selections of one
tree made in the same iteration claim distinct child positions: slots arriving at a node with free
positions get them in slot order, the others select a child and go on. A child whose rollout is
still in flight has no value yet; selection gives it the log-mean-exp of its valued siblings
(uniform when none has one). Subtrees that can take no new child (leaves; full nodes whose
children are all exhausted) are skipped by the search's selection, not by the final draws. A slot
that finds only children still being created waits for the next iteration.

The tree lives in preallocated device tensors: M nodes per tree (each model call creates one node,
each rollout from the root one more, so the budget bounds M), plus one scratch node that masked
writes go to. Budget: a rollout from a node at level l costs S - l model NFE (S from the root);
a slot starts one only if its row can still pay for it and for every rollout in flight, so
``budget`` is never exceeded; ``rollouts`` caps the rollouts per tree.

Host reads (``slots``): 'compact' reads the device once or twice per iteration (which slots run,
which finished: only they are evaluated and scored); 'fixed' evaluates every slot with the idle ones
masked out of the counts and reads nothing but whether the search ended, every ``sync_every``
iterations (as DFS's fixed slots). Both draw the same random numbers, so they give the same result.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from ._checks import check_choice, check_float, check_int
from .local import LocalSearch

SELECTIONS = ("boltzmann", "greedy")
SLOTS = ("compact", "fixed")
ROLLOUTS_PER_SLOT = 4  # rollouts per tree without a budget: 4 per slot


@dataclass
class DTS:
    """DTS / DTS* settings (``tts.search(..., "dts")`` and ``"dts_star"``).

    Attributes:
        select: 'boltzmann' (DTS: selection ∝ exp(λ v̂), the returned samples are draws of the
            tree, approximately p_theta exp(λ r)) or 'greedy' (DTS*: selection by argmax v̂, the
            returned sample is the best leaf).
        lam: λ > 0, the tilt of the target and the Boltzmann policy's inverse temperature (reward
            units^-1); it also shapes the soft values that greedy selection compares.
        max_children: children per node before selection descends instead of expanding (>= 2).
        rollouts: rollouts (leaves) per tree; None: as many as ``budget`` allows, or
            4 * n_particles without a budget.
        eta: DDIM eta of the transitions, in (0, 1]: the children of a node must be random draws
            of p_theta(. | x_t) (eta = 0 would make them all the same).
        slots: 'compact' (only running slots are evaluated and only finished rollouts decoded and
            scored; one or two host reads per iteration) or 'fixed' (every slot is evaluated, decoded
            and scored every iteration with the idle ones masked out of the counts; a host read
            every ``sync_every`` iterations only: for a costly decoder or verifier, compact wastes
            less). Same random numbers, same result.
        sync_every: fixed slots only: iterations between the host's end checks (default S).
        local: not supported (local search's guided steps are not draws of p_theta); must be None.
    """

    select: str = "boltzmann"
    lam: float = 1.0
    max_children: int = 2
    rollouts: Optional[int] = None
    eta: float = 1.0
    slots: str = "compact"
    sync_every: Optional[int] = None
    local: Optional[LocalSearch] = None

    name = "dts"

    def __post_init__(self):
        check_choice(self.select, "select", SELECTIONS)
        check_float(self.lam, "lam", 0.0, low_open=True)
        check_int(self.max_children, "max_children", 2)
        if self.rollouts is not None:
            check_int(self.rollouts, "rollouts", 1)
        check_float(self.eta, "eta", 0.0, 1.0, low_open=True)
        check_choice(self.slots, "slots", SLOTS)
        if self.sync_every is not None:
            check_int(self.sync_every, "sync_every", 1)
            if self.slots != "fixed":
                raise ValueError("sync_every paces the end checks of slots='fixed'; the compact loop checks every iteration")
        if self.local is not None:
            raise ValueError("DTS takes no local-search options: its children must be plain draws of the model's "
                             "transitions (guided steps would bias the soft values)")

    def plan(self, ctx) -> tuple:
        """(rollouts per tree or None, node capacity per tree) for a run."""
        s, k = ctx.num_steps, ctx.n_particles
        m = self.rollouts
        if m is None and ctx.row_budget is None:
            m = ROLLOUTS_PER_SLOT * k
        caps = []
        if m is not None:
            caps.append(1 + m + m * s)  # the root, a prior draw and S nodes per rollout
        if ctx.row_budget is not None:
            caps.append(1 + ctx.row_budget + ctx.row_budget // s)  # a node per NFE, a prior draw per root rollout
        return m, min(caps)

    def cost(self, ctx) -> Optional[int]:
        """Adaptive: the budget (or ``rollouts``) bounds it; nothing fixed to check."""
        return None

    # -- the search --------------------------------------------------------------------------------

    def run(self, ctx):
        b, k, s = ctx.batch_size, ctx.n_particles, ctx.num_steps
        dev = ctx.device
        m_roll, cap = self.plan(ctx)
        tree = _Tree(b, cap, self.max_children, s, self.lam, ctx.model.sample_shape, ctx.dtype, dev)
        w = b * k
        rows = ctx.rows(k)
        # the final draws' uniforms come first: the loop's length (fixed slots run to a sync point) must not move them
        final_u = torch.rand((s + 1, w), generator=ctx.generator, device=dev, dtype=torch.float64)
        st = _Slots(
            frontier=tree.root[rows].clone(), pos=torch.zeros(w, dtype=torch.int64, device=dev),
            active=torch.zeros(w, dtype=torch.bool, device=dev), waiting=torch.ones(w, dtype=torch.bool, device=dev),
            started=torch.zeros(b, dtype=torch.int64, device=dev),
        )
        compact = self.slots == "compact"
        sync_every = 1 if compact else (self.sync_every or s)
        it = 0
        r_dtype = None
        while True:
            for _ in range(sync_every):
                r_dtype = self._iterate(ctx, tree, st, rows, m_roll, compact) or r_dtype
                it += 1
            if not bool((st.active | st.waiting).any()):  # the loop's host read (every iteration when compact)
                break
        ctx.checks.add(tree.count.max() <= cap, f"internal error: a DTS tree outgrew its {cap} preallocated nodes")
        ctx.trace.add(step="tree", rollouts=st.started, nodes=tree.count, root_children=tree.n_children[tree.root],
                      root_value=tree.value[tree.root], iterations=it, slot_evaluations=ctx.counter.slot_evaluations)
        if self.select == "boltzmann":
            picked = tree.draw(tree.root[rows], final_u)
        else:
            picked = tree.best_leaves(k)
        r = tree.value[picked].to(r_dtype)
        result = ctx.finish(tree.x[picked], r, k)
        if self.select == "boltzmann":
            # DTS returns a draw of the tree (the first of the K), not the best of them
            first = torch.arange(b, device=dev) * k
            result.latents = tree.x[picked[first]]
            result.rewards = r[first]
            result.samples = ctx.decode_full(result.latents)
        return result

    def _iterate(self, ctx, tree, st, rows, m_roll, compact):
        """One model call for the running slots; finished rollouts are scored and backed up, and
        the free slots select their next expansions. Returns the rewards' dtype when it scored."""
        s, w = ctx.num_steps, rows.numel()
        dev = ctx.device
        # Random numbers for every slot, whether or not it needs them: the streams stay the same
        # whichever slots run, so compact and fixed slots give the same result.
        u = torch.rand((s + 1, w), generator=ctx.generator, device=dev, dtype=torch.float64)
        prior = ctx.init_noise(w)
        noise = ctx.randn(w)

        go = st.waiting
        if not compact or bool(go.any()):
            with ctx.timers("search_ops", dev):
                self._start(ctx, tree, st, rows, go, u, prior, m_roll)

        lv = tree.level[st.frontier].clamp(0, s - 1)  # idle slots point anywhere; their output is dropped
        if compact:
            idx = st.active.nonzero().squeeze(1)
            if idx.numel() == 0:
                return None
            x, li, ri = tree.x[st.frontier[idx]], lv[idx], rows[idx]
            x0_hat = ctx.denoise(x, li, ri)
            x_next = torch.zeros((w, *tree.x.shape[1:]), dtype=tree.x.dtype, device=dev)
            x_next[idx] = ctx.step(x, x0_hat, li, self.eta, noise=noise[idx])
        else:
            x = tree.x[st.frontier]
            with ctx.counter.masked(st.active):
                x0_hat = ctx.denoise(x, lv, rows)
            x_next = ctx.step(x, x0_hat, lv, self.eta, noise=noise)
        with ctx.timers("search_ops", dev):
            new = tree.grow(st.frontier, st.pos, x_next, lv + 1, st.active, rows)
        finished = st.active & (lv + 1 == s)
        st.frontier = torch.where(st.active, new, st.frontier)
        st.pos = torch.where(st.active, torch.zeros_like(st.pos), st.pos)
        r_dtype = None
        if compact:
            fidx = finished.nonzero().squeeze(1)
            if fidx.numel():
                r_sub = ctx.score(x_next[fidx], rows[fidx], final=True)
                r_dtype = r_sub.dtype
                r = torch.zeros(w, dtype=torch.float64, device=dev).index_copy(0, fidx, r_sub.to(torch.float64))
                with ctx.timers("search_ops", dev):
                    tree.backup(new, r, finished)
        else:
            r_all = ctx.score(x_next, rows, final=True, count=finished)
            r_dtype = r_all.dtype
            with ctx.timers("search_ops", dev):
                tree.backup(new, r_all.to(torch.float64), finished)
        st.active = st.active & ~finished
        st.waiting = st.waiting | finished
        return r_dtype

    def _start(self, ctx, tree, st, rows, go, u, prior, m_roll):
        """Selection and expansion for the slots ``go``: claim a child position each, then start the
        rollouts the row's rollout cap and budget allow (in slot order); the others retire."""
        s = ctx.num_steps
        b, k = ctx.batch_size, ctx.n_particles
        target, tpos, found, stuck = tree.select(tree.root[rows], go, u, greedy=self.select == "greedy",
                                                 read_host=self.slots == "compact")
        ok = found
        if m_roll is not None:
            nth = found.view(b, k).to(torch.int64).cumsum(1).view(-1)
            ok = ok & (st.started[rows] + nth <= m_roll)
        if ctx.row_budget is not None:
            # the row must pay for this rollout and for every one in flight: spent + committed + new <= budget
            remaining = torch.where(st.active, s - tree.level[st.frontier], torch.zeros_like(st.pos))
            committed = torch.zeros(b, dtype=torch.int64, device=rows.device).index_add_(0, rows, remaining)
            cost = torch.where(ok, s - tree.level[target].clamp(min=0), torch.zeros_like(st.pos))
            csum = cost.view(b, k).cumsum(1).view(-1)
            ok = ok & (ctx.counter.per_prompt[rows] + committed[rows] + csum <= ctx.row_budget)
        # The refused slots of a row follow its started ones in slot order, so the positions they give
        # back are the highest claimed at their nodes: the counts stay consecutive.
        tree.release(target, found & ~ok)
        at_root = ok & (target == tree.root[rows])
        child = tree.add_prior_children(target, tpos, prior, at_root, rows)
        st.frontier = torch.where(at_root, child, torch.where(ok, target, st.frontier))
        st.pos = torch.where(at_root, torch.zeros_like(tpos), torch.where(ok, tpos, st.pos))
        st.active = st.active | ok
        # slots that met only children still being created try again next iteration; a tree whose
        # root is exhausted (all max_children^(S+1) leaves grown) takes no rollout any more
        st.waiting = stuck & ~tree.exhausted[tree.root[rows]]
        st.started = st.started + ok.view(b, k).sum(1)


@dataclass
class _Slots:
    """The rollouts in flight: each slot's frontier node (the state it denoises next), the child
    position its next node takes there, whether it runs or waits to select, rollouts started per row."""

    frontier: torch.Tensor
    pos: torch.Tensor
    active: torch.Tensor
    waiting: torch.Tensor
    started: torch.Tensor


class _Tree:
    """B trees of ``cap`` nodes each in flat device tensors (node g of row r is r * cap + j), plus a
    scratch node (the last) that masked writes go to and nothing reads.

    Per node: x (the state), level (-1 root, 0 .. S), parent, children [C] (-1: empty), n_children
    (created and reserved positions), value v̂ (NaN until a rollout below it finished), exhausted
    (no new child can be added anywhere below it).
    """

    def __init__(self, b: int, cap: int, max_children: int, num_steps: int, lam: float, sample_shape, dtype, device):
        n = b * cap + 1
        self.cap, self.c, self.s, self.lam = cap, max_children, num_steps, float(lam)
        self.scratch = n - 1
        self.root = torch.arange(b, device=device) * cap
        self.x = torch.zeros((n, *sample_shape), dtype=dtype, device=device)
        self.level = torch.full((n,), -2, dtype=torch.int64, device=device)
        self.level[self.root] = -1
        self.parent = torch.full((n,), self.scratch, dtype=torch.int64, device=device)
        self.children = torch.full((n, max_children), -1, dtype=torch.int64, device=device)
        self.n_children = torch.zeros(n, dtype=torch.int64, device=device)
        self.value = torch.full((n,), math.nan, dtype=torch.float64, device=device)
        self.exhausted = torch.zeros(n, dtype=torch.bool, device=device)
        self.count = torch.ones(b, dtype=torch.int64, device=device)  # nodes used per tree (the root)

    # -- growing -----------------------------------------------------------------------------------

    def _alloc(self, mask, rows):
        """Fresh node ids for the slots in ``mask`` (rows sorted, as slots are): scratch elsewhere."""
        b = self.count.numel()
        m = mask.view(b, -1).to(torch.int64)
        rank = (m.cumsum(1) - 1).view(-1)
        ids = rows * self.cap + self.count[rows] + rank
        self.count = self.count + m.sum(1)
        return torch.where(mask, ids, torch.full_like(ids, self.scratch))

    def _attach(self, new, parent, pos, x, level, mask):
        """Write new nodes (children of ``parent`` at ``pos``); a node above x_0 keeps position 0 reserved
        for the rollout that continues from it."""
        self.x[new] = x
        self.level[new] = level
        self.parent[new] = parent
        self.value[new] = math.nan
        self.exhausted[new] = level == self.s
        self.n_children[new] = (level < self.s).to(torch.int64)
        par = torch.where(mask, parent, torch.full_like(parent, self.scratch))
        self.children[par, pos] = torch.where(mask, new, torch.full_like(new, -1))
        self._clear_scratch()

    def _clear_scratch(self):
        """The scratch node takes the masked writes; reset it so that no walk ever leaves it."""
        sc = self.scratch
        self.children[sc] = -1
        self.parent[sc], self.level[sc], self.n_children[sc] = sc, -2, 0
        self.value[sc], self.exhausted[sc] = math.nan, False

    def grow(self, frontier, pos, x_next, level_next, mask, rows):
        """The running slots' new states become children of their frontier nodes: the new node ids."""
        new = self._alloc(mask, rows)
        self._attach(new, frontier, pos, x_next, level_next, mask)
        return new

    def add_prior_children(self, target, pos, prior, mask, rows):
        """Children x_T ~ N(0, I) of the root for the slots that expand it (no model call)."""
        new = self._alloc(mask, rows)
        self._attach(new, target, pos, prior, torch.zeros_like(pos), mask)
        return new

    def release(self, target, mask):
        """Give back the child positions claimed by slots that do not start."""
        at = torch.where(mask, target, torch.full_like(target, self.scratch))
        self.n_children.index_add_(0, at, -mask.to(torch.int64))
        self.n_children[self.scratch] = 0

    # -- the soft Bellman backup ------------------------------------------------------------------

    def soft_value(self, nodes):
        """v̂ [n] = (1/λ) log mean_{valued children c} exp(λ v̂(c)) of ``nodes`` [n] (NaN without one),
        and whether each node is exhausted (full, every child created and exhausted)."""
        ch = self.children[nodes]
        created = ch >= 0
        chc = ch.clamp(min=0)
        v = self.value[chc]
        known = created & ~torch.isnan(v)
        n_known = known.sum(1)
        lv = torch.where(known, self.lam * v, torch.full_like(v, -math.inf))
        soft = (torch.logsumexp(lv, 1) - torch.log(n_known.clamp(min=1).to(torch.float64))) / self.lam
        soft = torch.where(n_known > 0, soft, torch.full_like(soft, math.nan))
        exhausted = (self.n_children[nodes] >= self.c) & (created & self.exhausted[chc]).all(1)
        return soft, exhausted

    def backup(self, leaves, rewards, mask):
        """v̂(x_0) = r(x_0) at the ``leaves`` in ``mask``, then the soft Bellman backup up to the root.

        All leaves are at level S, so the walk up is level by level for every slot at once; slots
        sharing an ancestor write it the same value.
        """
        node = torch.where(mask, leaves, torch.full_like(leaves, self.scratch))
        self.value[node] = rewards
        for _ in range(self.s + 1):  # levels S-1 .. 0, then the root
            node = self.parent[node]
            self.value[node], self.exhausted[node] = self.soft_value(node)
        self.value[self.scratch], self.exhausted[self.scratch] = math.nan, False

    # -- selection -----------------------------------------------------------------------------------

    def policy_logits(self, nodes, skip_exhausted: bool):
        """λ v̂(c) [n, C] of the children of ``nodes`` (-inf where there is none to choose).

        A child without a value yet (its rollout is in flight) gets the log-mean-exp of its valued
        siblings' λ v̂, or 0 when none has one (uniform).
        """
        ch = self.children[nodes]
        created = ch >= 0
        chc = ch.clamp(min=0)
        v = self.lam * self.value[chc]
        known = created & ~torch.isnan(v)
        lv = torch.where(known, v, torch.full_like(v, -math.inf))
        n_known = known.sum(1, keepdim=True)
        fill = torch.logsumexp(lv, 1, keepdim=True) - torch.log(n_known.clamp(min=1).to(torch.float64))
        fill = torch.where(n_known > 0, fill, torch.zeros_like(fill))
        logits = torch.where(known, v, fill.expand_as(v))
        ok = created & ~self.exhausted[chc] if skip_exhausted else created
        return torch.where(ok, logits, torch.full_like(logits, -math.inf)), ch

    def select(self, roots, go, u, greedy: bool, read_host: bool = False):
        """The paper's selection and expansion for the slots ``go`` [W], all trees at once.

        Descends from ``roots`` level by level: at each node the slots still descending claim its
        free child positions in slot order; the others move to a child (Boltzmann with the
        uniforms u [S + 1, W], or greedy) among those that can still grow.

        Returns (target node, claimed position, found, stuck) [W]: ``found`` slots expand
        ``target`` at ``tpos``; ``stuck`` slots met only children still being created.
        ``read_host``: stop as soon as no slot descends (a host read per level; the uniforms are
        drawn in advance, so the result is the same).
        """
        w = go.numel()
        cur = torch.where(go, roots, torch.full_like(roots, self.scratch))
        desc = go.clone()
        target = torch.full_like(roots, self.scratch)
        tpos = torch.zeros_like(roots)
        found = torch.zeros_like(go)
        stuck = torch.zeros_like(go)
        for d in range(self.s + 1):  # the root (level -1) down to level S - 1
            if read_host and not bool(desc.any()):
                break
            nch = self.n_children[cur]
            free = torch.where(self.level[cur] < self.s, self.c - nch, torch.zeros_like(nch))
            rank = _group_rank(cur, desc, self.scratch + 1)
            claim = desc & (rank < free)
            target = torch.where(claim, cur, target)
            tpos = torch.where(claim, nch + rank, tpos)
            self.n_children.index_add_(0, torch.where(claim, cur, torch.full_like(cur, self.scratch)), claim.to(torch.int64))
            self.n_children[self.scratch] = 0
            found = found | claim
            desc = desc & ~claim
            logits, ch = self.policy_logits(cur, skip_exhausted=True)
            has = torch.isfinite(logits).any(1)
            stuck = stuck | (desc & ~has)
            desc = desc & has
            pick = logits.argmax(1) if greedy else _boltzmann(logits, u[d])
            cur = torch.where(desc, ch.gather(1, pick[:, None]).squeeze(1), cur)
        return target, tpos, found, stuck

    # -- what the search returns ----------------------------------------------------------------------

    def draw(self, roots, u):
        """Leaves [W] drawn by descents from ``roots`` [W] with children ∝ exp(λ v̂) (uniforms u [S + 1, W])."""
        cur = roots.clone()
        for d in range(self.s + 1):
            logits, ch = self.policy_logits(cur, skip_exhausted=False)
            nxt = ch.gather(1, _boltzmann(logits, u[d])[:, None]).squeeze(1)
            cur = torch.where(self.level[cur] < self.s, nxt, cur)
        return cur

    def best_leaves(self, k: int):
        """Each tree's k highest-reward leaves [B * k], best first (the best repeats where a tree has fewer)."""
        b = self.count.numel()
        r = torch.where(self.level[:-1] == self.s, self.value[:-1], torch.full_like(self.value[:-1], -math.inf)).view(b, self.cap)
        top = r.topk(min(k, self.cap), dim=1)
        idx = torch.where(torch.isfinite(top.values), top.indices, top.indices[:, :1])
        if idx.shape[1] < k:
            idx = torch.cat([idx, idx[:, :1].expand(b, k - idx.shape[1])], dim=1)
        return (idx + self.root[:, None]).reshape(-1)


def _boltzmann(logits, u):
    """Index [n] drawn from softmax(logits) [n, C] by inverse CDF with uniforms u [n] (never a -inf entry)."""
    p = torch.softmax(logits, dim=1)
    cdf = p.cumsum(1)
    pick = (cdf <= u[:, None] * cdf[:, -1:]).sum(1)  # a zero-probability entry is never where the count lands
    # a uniform at the very top of the CDF (rounding) lands on the last choosable entry
    last = torch.where(torch.isfinite(logits), torch.arange(logits.shape[1], device=logits.device), -1).amax(1)
    return torch.minimum(pick, last.clamp(min=0))


def _group_rank(key, mask, sentinel: int):
    """Rank [n] of each masked entry among the masked entries with the same key, in index order."""
    k = torch.where(mask, key, torch.full_like(key, sentinel))
    order = torch.argsort(k, stable=True)
    ks = k[order]
    first = torch.searchsorted(ks, ks)
    rank = torch.empty_like(k)
    rank[order] = torch.arange(k.numel(), device=k.device) - first
    return rank
