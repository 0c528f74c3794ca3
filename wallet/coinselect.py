"""Coin selection: which of the wallet's coins pay for a transaction, and what change.

A payment of ``target`` units at ``fee_rate`` (units per 1,000 bytes) needs inputs worth
the target plus the fee of the transaction they make, and every input adds bytes, so
each coin is judged by its **effective value**: its amount less the fee of the input that
spends it. A coin whose effective value is not positive costs more to spend than it
brings and is never selected.

**Waste** is the yardstick, defined as Bitcoin Core defines it. For a selection of ``n``
inputs::

    waste = n * (input_fee - long_term_input_fee) + (cost_of_change  if change
                                                     excess          otherwise)

where ``input_fee = fee_for(input, fee_rate)``, ``long_term_input_fee = fee_for(input,
long_term_fee_rate)`` (what the input would cost if spent later, at the rate expected in
the long run), ``cost_of_change = fee_for(change_output, fee_rate) + fee_for(change_spend,
long_term_fee_rate)`` (creating a change output now and spending it later) and
``excess = selected effective value - (target + fee_for(base, fee_rate))``, which a
changeless transaction leaves to the miner. Lower is better; it can be negative when fees
are low now (spending many inputs at today's price beats spending them later).

The search, as Bitcoin Core's ``SelectCoins`` does it, runs several algorithms and keeps
the result of least waste (ties go to the one listed first):

``bnb``
    Branch and bound (Mark Erhardt's algorithm, Core's ``SelectCoinsBnB``): a bounded
    depth-first search over the coins sorted by effective value, largest first, for a
    set whose effective value lands in ``[need, need + cost_of_change]``. Such a set pays
    without a change output, the excess (at most what a change output would have cost)
    going to the fee. Of the sets found within ``BNB_TOTAL_TRIES`` steps it keeps the one
    of least waste. Equal coins are not tried in every order, and when the fee rate is
    above the long-term rate a branch whose input waste already exceeds the best is cut.
    Departures from Core: when the fee rate is *below* the long-term rate (each input
    has negative waste) a branch that reached the window goes on adding coins while it
    stays in it, so the search also finds the larger, less wasteful sets; coins too
    large to fit under the window are jumped over in one step rather than one step each
    (on a 10,000-coin wallet this is what lets the search reach the small coins that
    make exact matches); and the search stops early once it holds a set no other can
    beat (no excess, as few inputs as any set can have).
``largest_first``
    Coins largest first until the transaction is paid for. Also the bench's baseline.
``srd``
    Single random draw (Core's ``SelectCoinsSRD``): coins in random order until they pay
    for the transaction *with* a change output of at least the dust limit; when the
    standard size limit is reached, the smallest coin drawn so far is dropped.

The fallbacks (``largest_first`` and ``srd``) were chosen over Core's knapsack for this
reason: with change, waste depends only on the number of inputs (``cost_of_change`` is a
constant), so when fees are at or above the long-term rate the fewest inputs is optimal
and largest-first finds exactly that; when fees are below it, more inputs are better and
a random draw tends to take many small coins (consolidation). Knapsack's thousand random
passes over every coin would cost seconds on a large wallet and, by the argument above,
win nothing on waste that these two do not. Because ``largest_first`` is always among the
candidates, ``select_coins`` never has more waste than ``largest_first`` on the same
input; a ``bnb`` result replaces it only when it is strictly better or equal.

Whichever algorithm picks the coins, the transaction is then finished exactly: with a
change output the fee is ``fee_for(size)`` of the final size and the rest is change;
change below the dust limit (``chain.policy.dust_threshold`` of the dust relay fee unless
given) is never created but dropped into the fee; ``bnb`` results are always changeless.

**Exactness.** All arithmetic is on integers. Effective values round each input's fee up,
and ``fee_for(a) + fee_for(b) >= fee_for(a + b)``, so a selection judged sufficient by
effective value always covers ``fee_for`` of the real size. A changeless transaction
therefore pays ``fee >= fee_for(size)``: its excess plus, when the rate is not a whole
number of units per byte, at most about one unit per input of rounding.

**Subtracting the fee from the payment** (``subtract_fee=True``): the sender spends
``target`` and the payment output carries what is left after the fee. Selection then
judges coins by their plain amounts (their input fees come out of the payment, not out of
them) and looks for at least ``target`` with no fee on top; ``need`` above is ``target``
and ``excess = sum(amounts) - target``. The fee is always exactly ``fee_for(size)``:

* with change: ``change = sum(amounts) - target`` and the payment is ``target - fee``;
* without (``bnb``, or change below the dust limit): the payment is
  ``sum(amounts) - fee``, i.e. ``target - fee`` plus the excess, which goes to the
  recipient rather than the miner (as Bitcoin Core does).

So in both modes ``sum(amounts of inputs) == payment + fee + change`` with
``Selection.payment`` giving the payment output: ``target`` normally, and with
``subtract_fee`` ``target - fee`` when there is change (``sum == target + change``),
``target - fee + excess`` when there is not. A payment left below the dust limit after its
fee is refused (:class:`InsufficientFunds`).

Every algorithm is deterministic given ``rng`` (which also breaks ties between equal
coins); without one a fresh, OS-seeded ``random.Random`` is used. A coin listed twice
(same key) is considered once. Selections are capped at the standard transaction size
(``max_size``, ``chain.policy.DEFAULT_MAX_STANDARD_TX_SIZE`` by default).
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from chain.policy import (
    DEFAULT_DUST_RELAY_FEE,
    DEFAULT_MAX_STANDARD_TX_SIZE,
    dust_threshold,
)
from chain.policy import fee_for as _policy_fee_for

BNB_TOTAL_TRIES = 100_000  # search steps before branch and bound settles for its best
DEFAULT_DUST_LIMIT = dust_threshold(DEFAULT_DUST_RELAY_FEE)


@dataclass(frozen=True)
class Candidate:
    """A spendable coin: its outpoint key (36 bytes, opaque here) and amount in units."""

    key: bytes
    amount: int


@dataclass(frozen=True)
class SizeModel:
    """Encoded sizes in bytes, as the wallet measures them."""

    base: int  # a transaction with no inputs and the payment output(s)
    input: int  # what each input adds, signature included
    change_output: int  # what a change output adds
    change_spend: int  # what spending that change output later costs (= input)


@dataclass(frozen=True)
class Selection:
    """The chosen inputs and how the transaction spends them (see the module essay)."""

    inputs: tuple[Candidate, ...]
    fee: int  # what the transaction pays: sum(inputs) - payment - change
    change: int  # 0 when there is no change output
    algorithm: str  # "bnb", "largest_first" or "srd"
    waste: int  # Bitcoin Core's waste metric of this selection

    @property
    def total_in(self) -> int:
        """Sum of the inputs' amounts."""
        return sum(c.amount for c in self.inputs)

    @property
    def payment(self) -> int:
        """What the payment output(s) carry: ``target``, or with ``subtract_fee`` what is
        left of it after the fee (plus any changeless excess)."""
        return self.total_in - self.fee - self.change


class InsufficientFunds(ValueError):
    """The coins cannot pay for the transaction; the message gives available vs needed."""

    def __init__(self, message: str, available: int, needed: int) -> None:
        super().__init__(message)
        self.available = available
        self.needed = needed


def fee_for(size: int, fee_rate: int) -> int:
    """The fee ``fee_rate`` (units per 1,000 bytes) asks of ``size`` bytes, rounded up:
    ``ceil(size * fee_rate / 1000)`` (``chain.policy.fee_for``, arguments swapped)."""
    if size < 0 or fee_rate < 0:
        raise ValueError("size and fee rate must be non-negative")
    return _policy_fee_for(fee_rate, size)


@dataclass
class _Problem:
    """One selection problem, prepared once and shared by the algorithms."""

    coins: list[Candidate]  # spendable coins, largest first (ties in random order)
    values: list[int]  # what each coin counts for: effective value, or amount (subtract_fee)
    target: int
    sizes: SizeModel
    fee_rate: int
    dust: int
    subtract_fee: bool
    need: int  # selection value a changeless transaction needs
    change_goal: int  # selection value that leaves change of at least the dust limit
    delta: int  # input_fee - long_term_input_fee, the waste each input adds
    cost_of_change: int
    max_inputs: int
    skipped: int  # coins left out as uneconomic


def _prepare(
    candidates: Sequence[Candidate],
    target: int,
    fee_rate: int,
    sizes: SizeModel,
    long_term_fee_rate: int | None,
    dust_limit: int | None,
    subtract_fee: bool,
    rng: random.Random,
    max_size: int | None,
) -> _Problem:
    if target <= 0:
        raise ValueError(f"target must be positive, got {target}")
    if fee_rate < 0:
        raise ValueError(f"fee rate must be non-negative, got {fee_rate}")
    lt_rate = fee_rate if long_term_fee_rate is None else long_term_fee_rate
    if lt_rate < 0:
        raise ValueError(f"long-term fee rate must be non-negative, got {lt_rate}")
    dust = DEFAULT_DUST_LIMIT if dust_limit is None else dust_limit
    if dust < 0:
        raise ValueError(f"dust limit must be non-negative, got {dust}")
    if min(sizes.base, sizes.change_output, sizes.change_spend) < 0 or sizes.input <= 0:
        raise ValueError(f"bad size model {sizes}")
    limit = DEFAULT_MAX_STANDARD_TX_SIZE if max_size is None else max_size

    seen: dict[bytes, Candidate] = {}
    for c in candidates:
        earlier = seen.get(c.key)
        if earlier is None:
            seen[c.key] = c
        elif earlier.amount != c.amount:
            raise ValueError(f"coin {c.key.hex()} listed with two amounts")
    input_fee = fee_for(sizes.input, fee_rate)
    coins = [c for c in seen.values() if c.amount - input_fee > 0]
    skipped = len(seen) - len(coins)
    rng.shuffle(coins)
    coins.sort(key=lambda c: c.amount, reverse=True)  # stable: equal coins stay shuffled

    change_fee = fee_for(sizes.change_output, fee_rate)
    if subtract_fee:
        values = [c.amount for c in coins]
        need = target
        change_goal = target + max(dust, 1)
    else:
        values = [c.amount - input_fee for c in coins]
        need = target + fee_for(sizes.base, fee_rate)
        change_goal = need + change_fee + max(dust, 1)
    return _Problem(
        coins=coins,
        values=values,
        target=target,
        sizes=sizes,
        fee_rate=fee_rate,
        dust=dust,
        subtract_fee=subtract_fee,
        need=need,
        change_goal=change_goal,
        delta=input_fee - fee_for(sizes.input, lt_rate),
        cost_of_change=change_fee + fee_for(sizes.change_spend, lt_rate),
        max_inputs=max(0, (limit - sizes.base - sizes.change_output) // sizes.input),
        skipped=skipped,
    )


def _bnb(p: _Problem) -> list[int] | None:
    """Indices of the least-waste changeless set found, or None.

    Depth first over ``values`` (descending): each step either includes the next coin
    that still fits under the window's top or backtracks, dropping the last coin
    included and going on without it. Coins too large to fit are jumped over in one
    step (binary search), the unexplored coins' total comes from suffix sums, and runs
    of equal coins are included only in order (a coin equal to one this branch left out
    is left out too), so every step of ``BNB_TOTAL_TRIES`` explores a new node.
    """
    values, need, delta, limit = p.values, p.need, p.delta, p.max_inputs
    n = len(values)
    upper = need + p.cost_of_change
    suffix = [0] * (n + 1)  # suffix[i] = sum(values[i:])
    for i in range(n - 1, -1, -1):
        suffix[i] = suffix[i + 1] + values[i]
    if suffix[0] < need or limit == 0:
        return None
    negated = [-v for v in values]  # ascending, for bisect
    # No set reaching ``need`` has fewer coins than the largest ones that reach it, so
    # with non-negative input waste nothing beats that many coins with no excess.
    fewest = next(i for i in range(1, n + 1) if suffix[0] - suffix[i] >= need)
    floor = fewest * delta if delta >= 0 else None
    selected: list[int] = []
    value = 0
    best: list[int] | None = None
    best_waste = 0
    index = 0  # the first coin not yet decided on in this branch
    for _ in range(BNB_TOTAL_TRIES):
        backtrack = False
        input_waste = len(selected) * delta
        if value >= need:
            waste = input_waste + value - need
            if best is None or waste < best_waste:
                best, best_waste = selected.copy(), waste
                if best_waste == floor:
                    break
            # Each further input lowers the waste when fees are below the long-term
            # rate, so then the branch goes on adding coins while the window allows.
            backtrack = delta >= 0
        elif delta > 0 and best is not None and input_waste + delta > best_waste:
            backtrack = True  # one more input already wastes more than the best
        if not backtrack and len(selected) < limit:
            # The next coin that fits under the top of the window.
            j = bisect_left(negated, value - upper, index)
            if j < n and value + suffix[j] >= need:
                previous_left_out = j > 0 and (not selected or selected[-1] != j - 1)
                if previous_left_out and values[j] == values[j - 1]:
                    # Equal to a coin this branch left out: leave the whole run out.
                    index = bisect_right(negated, -values[j], j)
                    continue
                selected.append(j)
                value += values[j]
                index = j + 1
                continue
        if not selected:
            break  # every branch explored
        last = selected.pop()
        value -= values[last]
        index = last + 1
    return best


def _largest_first(p: _Problem) -> list[int] | None:
    total = 0
    for i, v in enumerate(p.values[: p.max_inputs]):
        total += v
        if total >= p.need:
            return list(range(i + 1))
    return None


def _srd(p: _Problem, rng: random.Random) -> list[int] | None:
    order = list(range(len(p.values)))
    rng.shuffle(order)
    heap: list[tuple[int, int]] = []  # (value, index): the smallest drawn coin on top
    total = 0
    for i in order:
        heapq.heappush(heap, (p.values[i], i))
        total += p.values[i]
        if len(heap) > p.max_inputs:
            total -= heapq.heappop(heap)[0]
        if total >= p.change_goal:
            return sorted(i for _, i in heap)
    return None


def _finish(p: _Problem, chosen: list[int], algorithm: str, allow_change: bool) -> Selection | None:
    """The exact transaction these coins make, or None when they cannot make one."""
    inputs = tuple(p.coins[i] for i in chosen)
    total = sum(c.amount for c in inputs)
    selected = sum(p.values[i] for i in chosen)
    size = p.sizes.base + len(inputs) * p.sizes.input
    fee_plain = fee_for(size, p.fee_rate)
    fee_with_change = fee_for(size + p.sizes.change_output, p.fee_rate)
    if p.subtract_fee:
        if total < p.target:
            return None
        change = total - p.target if allow_change else 0
        if change > 0 and change >= p.dust:
            fee, payment = fee_with_change, p.target - fee_with_change
        else:
            change, fee, payment = 0, fee_plain, total - fee_plain
        if payment <= 0 or payment < p.dust:
            return None
    else:
        if total < p.target + fee_plain:
            return None
        change = total - p.target - fee_with_change if allow_change else 0
        if change > 0 and change >= p.dust:
            fee = fee_with_change
        else:
            change, fee = 0, total - p.target
    extra = p.cost_of_change if change else selected - p.need
    waste = len(inputs) * p.delta + extra
    return Selection(inputs=inputs, fee=fee, change=change, algorithm=algorithm, waste=waste)


def _fail(p: _Problem) -> InsufficientFunds:
    available = sum(p.values)
    what = "amount" if p.subtract_fee else "effective value (after input fees)"
    needed = (
        f"target {p.target}, the fee coming out of the payment"
        if p.subtract_fee
        else f"target {p.target} + fee {p.need - p.target} of the transaction's other bytes"
    )
    skipped = f"; {p.skipped} coins skipped as worth less than their input fee" if p.skipped else ""
    if available < p.need:
        return InsufficientFunds(
            f"insufficient funds: available {available} units ({what} of {len(p.coins)} "
            f"spendable coins{skipped}), needed {p.need} units ({needed})",
            available,
            p.need,
        )
    top = sum(p.values[: p.max_inputs])
    if top < p.need:
        return InsufficientFunds(
            f"insufficient funds within the standard size: the largest {p.max_inputs} "
            f"coins give {top} units, needed {p.need} units ({needed}); "
            f"{available} units in all would take more inputs than a transaction may hold",
            top,
            p.need,
        )
    return InsufficientFunds(
        f"insufficient funds: available {available} units, needed {p.need} units, but the "
        f"payment of {p.target} less its fee would be below the dust limit {p.dust}",
        available,
        p.need,
    )


def select_coins(
    candidates: Sequence[Candidate],
    target: int,
    fee_rate: int,
    sizes: SizeModel,
    *,
    long_term_fee_rate: int | None = None,
    dust_limit: int | None = None,
    subtract_fee: bool = False,
    rng: random.Random | None = None,
    max_size: int | None = None,
) -> Selection:
    """Coins paying ``target`` at ``fee_rate``: the least-waste of branch and bound
    (changeless), largest-first and a single random draw (see the module essay for the
    waste metric, the change and dust rules and the exact ``subtract_fee`` semantics).

    ``long_term_fee_rate`` defaults to ``fee_rate`` (no view on future fees: waste is then
    only the excess or the cost of change); ``dust_limit`` to the policy's dust threshold;
    ``max_size`` to the standard transaction size. Raises :class:`InsufficientFunds` when
    no selection pays for the transaction, ``ValueError`` on nonsensical arguments.
    """
    rng = random.Random() if rng is None else rng
    p = _prepare(
        candidates,
        target,
        fee_rate,
        sizes,
        long_term_fee_rate,
        dust_limit,
        subtract_fee,
        rng,
        max_size,
    )
    results: list[Selection] = []
    if (found := _bnb(p)) is not None and (s := _finish(p, found, "bnb", False)) is not None:
        results.append(s)
    if (found := _largest_first(p)) is not None and (
        s := _finish(p, found, "largest_first", True)
    ) is not None:
        results.append(s)
    if (found := _srd(p, rng)) is not None and (s := _finish(p, found, "srd", True)) is not None:
        results.append(s)
    if not results:
        raise _fail(p)
    return min(results, key=lambda s: s.waste)  # min keeps the first of equal waste


def largest_first(
    candidates: Sequence[Candidate],
    target: int,
    fee_rate: int,
    sizes: SizeModel,
    *,
    long_term_fee_rate: int | None = None,
    dust_limit: int | None = None,
    subtract_fee: bool = False,
    rng: random.Random | None = None,
    max_size: int | None = None,
) -> Selection:
    """Largest coins first until the transaction is paid for, then change (or dust into
    the fee) exactly as :func:`select_coins` finishes it: the baseline it is measured by.
    ``rng`` only orders equal coins."""
    rng = random.Random() if rng is None else rng
    p = _prepare(
        candidates,
        target,
        fee_rate,
        sizes,
        long_term_fee_rate,
        dust_limit,
        subtract_fee,
        rng,
        max_size,
    )
    found = _largest_first(p)
    result = None if found is None else _finish(p, found, "largest_first", True)
    if result is None:
        raise _fail(p)
    return result
