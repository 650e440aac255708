"""The simulation harness: one seeded world, stepped one event at a time, checked after every step.

A ``Simulation`` owns a ``ManualClock``, a ``SimBroker``, a ``SimFeed``, a
``MemoryStore`` and the engine (rebuilt from the store after a crash).  Each
step delivers one event — a tick, a command, a job run (maybe with a fault), a
held reply released, a clock advance, a store commit, a fault, a crash — then
pumps the engine and checks the invariants (``invariants.Checker``).  The step
methods are public so that a test can script a scenario step by step;
``run_random`` draws the steps from the seed and the profile.  ``settle`` ends a
run: faults stop, every job and reply is delivered, time passes, and the
end-of-run invariants are checked.

Every step appends a line to ``trace``; ``trace_hash`` fingerprints the run.
"""

from __future__ import annotations

import hashlib
import logging
import random
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Callable
from unittest import mock

from tmtool.clock import ManualClock
from tmtool.domain.commands import (
    Accepted,
    CreateTrade,
    Denied,
    ExitAll,
    ExitTrade,
    ModifyTrade,
    PauseTrade,
    ResumeTrade,
)
from tmtool.domain.models import (
    OPEN_STATUSES,
    Distance,
    DistanceMode,
    ExitOrderSettings,
    PartialTarget,
    PriceType,
    Product,
    Side,
    Strategy,
    Tick,
    Trade,
    TradeRisk,
    TradeStatus,
    TrailingSettings,
    round_to_tick,
)
from tmtool.engine.engine import Engine
from tmtool.engine.settings import EngineSettings

from tests.simulation.broker import SimBroker
from tests.simulation.executor import StepExecutor
from tests.simulation.feed import SimFeed
from tests.simulation.invariants import Checker, Violation
from tests.simulation.profiles import CALM, Profile
from tests.simulation.store import MemoryStore

START = 1_767_240_000.0  # Thursday 1 January 2026, 09:30 IST: the market is open
EXCHANGE = "NSE"
PRODUCT = Product.MIS


def _pct(value: float) -> Distance:
    return Distance(value, DistanceMode.PERCENT)


STRATEGIES = (
    Strategy("trend", trade_risk=TradeRisk(stop_loss=_pct(1.0), target=_pct(2.5),
                                           trailing=TrailingSettings(_pct(0.8), activation=_pct(0.4)))),
    Strategy("scalp", trade_risk=TradeRisk(stop_loss=Distance(2.0), target=Distance(3.0), breakeven_after=Distance(1.5))),
    Strategy("stepper", trade_risk=TradeRisk(
        stop_loss=_pct(1.5),
        trailing=TrailingSettings(_pct(1.0), step_trigger=_pct(0.5), step_move=_pct(0.4)),
        partial_targets=(PartialTarget(_pct(1.0), 0.5),),
    )),
)
LIMIT_EXIT_STRATEGY = Strategy(
    "limitx",
    trade_risk=TradeRisk(stop_loss=_pct(1.0), target=_pct(1.5)),
    exit_order=ExitOrderSettings(PriceType.LIMIT, protection_percent=0.2, reprice_after_seconds=2.0, max_reprices=2),
)


@dataclass(frozen=True)
class SymbolPlan:
    symbol: str
    side: Side  # every trade on a symbol has one side (long and short trades on one key is a documented limit)


@dataclass
class RunResult:
    seed: int
    profile: str
    steps: int
    violations: list[Violation]
    trace: list[str]
    trace_hash: str
    steps_run: int  # the random steps and the settling ones
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def replay_command(self) -> str:
        return f"python -m tests.simulation --seed {self.seed} --steps {self.steps} --profile {self.profile} -v"


class _ErrorLog(logging.Handler):
    """Collects exceptions tmtool's loggers report: a handler, timer or command that raised inside the engine."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not record.exc_info:
            return  # CRITICAL alerts are logged too; only a caught exception is an engine error
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        self.records.append(text)


class Simulation:
    """One seeded run.  Use as a context manager (it patches ``uuid.uuid4`` for deterministic ledger keys
    and silences tmtool's log output while it runs)."""

    def __init__(self, seed: int, profile: Profile = CALM, *, symbols: int = 3, book_lag: float | None = None,
                 order_updates: bool | None = None, settings: EngineSettings | None = None,
                 sides: tuple[Side, ...] | None = None, price: float | None = None) -> None:
        self.seed = seed
        self.profile = profile
        self.rng = random.Random(seed)
        rng = self.rng
        self.clock = ManualClock(START)
        self.started_at = START
        if sides is None:
            sides = tuple(rng.choice((Side.LONG, Side.SHORT)) for _ in range(symbols))
        self.symbols = [SymbolPlan(f"SIM{chr(65 + i)}", side) for i, side in enumerate(sides)]
        prices = {(EXCHANGE, s.symbol): price or float(rng.choice((100, 250, 480, 1000, 2400))) for s in self.symbols}
        if book_lag is None:
            low, high = profile.book_lag
            book_lag = round(rng.uniform(low, high), 2) if high > 0 else 0.0
        self.broker = SimBroker(self.clock, prices, book_lag=book_lag, live_status=profile.live_status)
        if order_updates is None:
            order_updates = profile.order_updates
        if order_updates is None:
            order_updates = rng.random() < 0.5
        self.feed = SimFeed(order_updates=order_updates)
        self.broker.update_listener = self.feed.order_update
        self.store = MemoryStore()
        if settings is None:
            settings = EngineSettings(simulated=True) if profile.settle_wait is None else EngineSettings(
                simulated=True, settle_wait=profile.settle_wait)
        self.settings = settings
        self.strategies = STRATEGIES + ((LIMIT_EXIT_STRATEGY,) if profile.limit_exits else ())
        self.trace: list[str] = []
        self.step_count = 0
        self.faults_on = True
        self.futures: list[tuple[str, object, Future]] = []
        self.stats: dict[str, int] = {"crashes": 0, "orders": 0, "trades": 0, "ticks": 0, "jobs": 0}
        self._uuid_counter = 0
        self._errors = _ErrorLog()
        self._patch = mock.patch("uuid.uuid4", self._next_uuid)
        self._logger = logging.getLogger("tmtool")
        self._saved_logger = (self._logger.propagate, self._logger.level)
        self.checker = Checker(self)
        self.store.trade_observers.append(self.checker.on_trade_saved)
        self.executor: StepExecutor | None = None
        self.engine: Engine | None = None

    # ---------------------------------------------------------------- life cycle

    def __enter__(self) -> "Simulation":
        self._patch.start()
        self._logger.addHandler(self._errors)
        self._logger.propagate = False
        self._logger.setLevel(logging.ERROR)
        self.engine = self._start_engine()
        self._record("start", self._state_line())
        return self

    def __exit__(self, *exc: object) -> None:
        self._patch.stop()
        self._logger.removeHandler(self._errors)
        self._logger.propagate, level = self._saved_logger
        self._logger.setLevel(level)

    def _next_uuid(self) -> uuid.UUID:
        self._uuid_counter += 1
        return uuid.UUID(int=self._uuid_counter << 88)  # hex[:10] (what the engine keeps) is the counter

    def _executor_factory(self, broker, store, post, settings) -> StepExecutor:  # type: ignore[no-untyped-def]
        self.executor = StepExecutor(self.broker, self.store, post)
        return self.executor

    def _start_engine(self) -> Engine:
        engine = Engine(store=self.store, broker=self.broker, feed=self.feed, clock=self.clock, settings=self.settings,
                        strategies=self.strategies, executor_factory=self._executor_factory)
        engine.start(threaded=False)
        return engine

    # ---------------------------------------------------------------- views

    def open_trades(self, symbol: str | None = None) -> list[Trade]:
        """Open trades as the engine last handed them to the store (its own view), by id."""
        trades = self.store.latest_trades
        return [trades[i] for i in sorted(trades)
                if trades[i].status in OPEN_STATUSES and (symbol is None or trades[i].symbol == symbol)]

    def trade(self, trade_id: int) -> Trade | None:
        return self.store.latest_trades.get(trade_id)

    def price(self, symbol: str) -> float:
        return self.broker.prices[(EXCHANGE, symbol)]

    def side_of(self, symbol: str) -> Side:
        return next(s.side for s in self.symbols if s.symbol == symbol)

    @property
    def pending_jobs(self) -> list:
        return self.executor.pending if self.executor is not None else []

    @property
    def held_replies(self) -> list:
        return self.executor.held if self.executor is not None else []

    # ---------------------------------------------------------------- the step

    def _step(self, description: str, action: Callable[[], object] | None = None) -> None:
        self.step_count += 1
        self.checker.before_step()
        if action is not None:
            extra = action()
            if extra:
                description = f"{description} {extra}"
        assert self.engine is not None
        self.engine.pump()
        self.checker.after_step()
        self._record(description, self._state_line())
        self._note_futures()

    def _record(self, description: str, state: str) -> None:
        self.trace.append(f"{self.step_count:5d} t+{self.clock.time() - START:8.2f} {description} | {state}")

    def _state_line(self) -> str:
        trades = " ".join(
            f"#{t.id}:{t.status.value[:4]}:{t.quantity}:{t.stop_loss}:{t.trailing_stop}" + (":P" if t.paused else "")
            for t in self.open_trades()
        )
        net = " ".join(f"{k[0]}={v}" for k, v in sorted(self.broker.net.items()) if v)
        return f"jobs={len(self.pending_jobs)} held={len(self.held_replies)} q={len(self.store.queue)} [{trades}] net[{net}]"

    def _note_futures(self) -> None:
        still = []
        for what, command, future in self.futures:
            if not future.done():
                still.append((what, command, future))
                continue
            result = future.result()
            if isinstance(result, Accepted):
                text = f"accepted {what}" + (f" #{result.trade_id}" if result.trade_id else "")
                if isinstance(command, CreateTrade) and result.trade_id:
                    self.stats["trades"] += 1
            else:
                assert isinstance(result, Denied)
                text = f"denied {what}: {result.code}"
            self.trace.append(f"      -> {text}")
        self.futures = still

    # ---------------------------------------------------------------- events (one step each)

    def tick(self, symbol: str, price: float) -> None:
        price = round_to_tick(price, self.broker.tick_size)

        def deliver() -> str:
            self.broker.set_price(EXCHANGE, symbol, price)
            delivered = self.feed.deliver(Tick(EXCHANGE, symbol, float(price), self.clock.time()))
            self.checker.note_tick(symbol, price, delivered)
            self.stats["ticks"] += 1
            return "" if delivered else "(not delivered)"

        self._step(f"tick {symbol} {price:.2f}", deliver)

    def submit(self, command: object, what: str | None = None) -> Future:
        assert self.engine is not None
        holder: list[Future] = []
        what = what or type(command).__name__

        def send() -> None:
            assert self.engine is not None
            future = self.engine.submit(command)
            self.futures.append((what, command, future))
            holder.append(future)

        self._step(f"command {command!r}" if len(repr(command)) < 160 else f"command {what}", send)
        return holder[0]

    def run_job(self, index: int = 0, fault: str | None = None) -> None:
        assert self.executor is not None
        executor = self.executor
        job = executor.take(index)
        self.stats["jobs"] += 1
        if job.is_order:
            self.stats["orders"] += 1
        self._step(f"run {job.describe()}" + (f" with {fault}" if fault else ""), lambda: executor.execute(job, fault))

    def drain(self, seconds: float, step: float = 0.5) -> None:
        """Run every job as it comes (no faults) and let ``seconds`` pass in steps of at most ``step``."""
        end = self.clock.time() + seconds
        while True:
            if self.pending_jobs:
                self.run_job(0)
            elif self.clock.time() < end - 1e-9:
                self.advance(min(step, end - self.clock.time()))
            else:
                return

    @property
    def violations(self) -> list[Violation]:
        return list(self.checker.violations)

    def run_all_jobs(self, fault: str | None = None) -> None:
        while self.pending_jobs:
            self.run_job(0, fault)

    def run_job_of(self, kind: str, fault: str | None = None) -> None:
        """Run the oldest pending job of ``kind`` ("order_sent", "order_lookup", ...)."""
        index = next(i for i, job in enumerate(self.pending_jobs) if job.kind == kind)
        self.run_job(index, fault)

    def run_job_if_pending(self, kind: str, fault: str | None = None) -> bool:
        """Run the oldest pending job of ``kind`` if there is one (an exit reads the position only
        when the engine's cache of it is too small or unknown); returns whether one ran."""
        if not any(job.kind == kind for job in self.pending_jobs):
            return False
        self.run_job_of(kind, fault)
        return True

    def release(self, index: int = 0) -> None:
        assert self.executor is not None
        executor = self.executor
        self._step("release a held reply", lambda: executor.release(index).kind)

    def advance(self, seconds: float) -> None:
        def move() -> None:
            self.clock.advance(seconds)
            self.broker.progress()

        self._step(f"advance {seconds:.2f}s", move)

    def advance_to_timer(self, cap: float = 5.0) -> None:
        assert self.engine is not None
        due = self.engine.next_timer_due()
        delta = cap if due is None else min(cap, max(0.0, due - self.clock.monotonic()))
        self.advance(delta)

    def commit(self, count: int | None = None) -> None:
        self._step("store commits" + ("" if count is None else f" {count}"),
                   lambda: f"{'ok' if self.store.commit(count) else 'refused'}")

    def store_refuses(self, refusing: bool) -> None:
        def toggle() -> None:
            self.store.refusing = refusing

        self._step("store refuses writes" if refusing else "store writes again", toggle)

    def feed_drop(self) -> None:
        self._step("feed dropped", self.feed.drop)

    def feed_reconnect(self) -> None:
        self._step("feed reconnected", self.feed.reconnect)

    def feed_silent(self, silent: bool) -> None:
        def toggle() -> None:
            self.feed.silent = silent

        self._step("feed silent" if silent else "feed speaks again", toggle)

    def external_close(self, symbol: str, quantity: int) -> None:
        """The user closes ``quantity`` of tmtool's position on ``symbol`` in the broker's own app."""
        side = self.side_of(symbol)

        def close() -> None:
            self.broker.outside_order(symbol, EXCHANGE, PRODUCT.value, side.exit_action, quantity, closes_tmtool=True)

        self._step(f"external close {symbol} {quantity}", close)

    def outside_open(self, symbol: str, action: str, quantity: int) -> None:
        """A position opened outside tmtool (not tmtool's to manage)."""
        self._step(f"outside {action} {symbol} {quantity}",
                   lambda: self.broker.outside_order(symbol, EXCHANGE, PRODUCT.value, action, quantity))

    def broker_progress(self) -> None:
        """Partly filled orders fill the rest; delayed MARKET orders fill."""
        self._step("broker fills what waited", lambda: self.broker.progress(release_partials=True, fill_all_market=True))

    def crash(self, in_flight: str | tuple[str, ...] | None = None) -> None:
        """Kill the engine: what the store had not committed is lost, order sends under way end as
        ``in_flight`` says — "never", "intent" (made durable, not sent) or "placed" (sent, no reply);
        one for all, one per send in order, or drawn from the seed when None — and a new engine starts
        from the store on the same broker."""

        def kill() -> str:
            assert self.executor is not None
            if not self.profile.crash_loses_tail and self.profile.intents_only_in_journal:
                self.store.commit()  # the writer got everything so far; the intents below only reach the journal
            fates = []
            for job in self.executor.pending:
                if not job.is_order:
                    continue
                if isinstance(in_flight, tuple):
                    fate = in_flight[len(fates)]
                else:
                    fate = in_flight or self.rng.choice(("never", "intent", "placed"))
                fates.append(fate)
                if fate == "intent":
                    self.store.save_order(job.record, durable=True)  # type: ignore[arg-type]
                elif fate == "placed":
                    self.executor.place_without_reply(job, durable=True)
            self.executor.shutdown()
            if not self.profile.crash_loses_tail and not self.profile.intents_only_in_journal:
                self.store.commit()
            lost = self.store.crash()
            self.feed.stop()
            self.stats["crashes"] += 1
            self.clock.advance(2.0)
            self.checker.before_restart()
            self.engine = self._start_engine()
            self.checker.after_restart()
            recovered, self.store.recovered_from_journal = self.store.recovered_from_journal, 0
            journal = f"; {recovered} intent(s) from the journal" if recovered else ""
            return f"(lost {lost} queued change(s){journal}; sends in flight: {','.join(fates) or 'none'})"

        self._step("crash and restart", kill)

    # ---------------------------------------------------------------- commands

    def create(self, symbol: str, quantity: int, strategy: str = "scalp", **fields: object) -> Future:
        command = CreateTrade(strategy=strategy, symbol=symbol, exchange=EXCHANGE, side=self.side_of(symbol),
                              product=PRODUCT, quantity=quantity, **fields)  # type: ignore[arg-type]
        return self.submit(command, f"create {strategy} {symbol} {quantity}")

    # ---------------------------------------------------------------- random runs

    def run_random(self, steps: int) -> RunResult:
        for _ in range(steps):
            self._random_step()
        self.settle()
        return self.result(steps)

    def result(self, steps: int) -> RunResult:
        digest = hashlib.sha256("\n".join(self.trace).encode()).hexdigest()
        return RunResult(self.seed, self.profile.name, steps, list(self.checker.violations), list(self.trace), digest,
                         self.step_count, {**self.stats, **self.checker.checked})

    def _random_step(self) -> None:
        rng, profile = self.rng, self.profile
        choices: list[tuple[str, float]] = [("tick", 30.0), ("advance", 8.0), ("command", 7.0), ("commit", 6.0),
                                            ("progress", 2.0)]
        if self.pending_jobs:
            choices.append(("job", 40.0))
        if self.held_replies:
            choices.append(("release", 4.0))
        for name, chance in (("crash", profile.crash), ("store", profile.store_refuse), ("drop", profile.feed_drop),
                             ("silent", profile.feed_silent), ("external", profile.external_close)):
            if chance > 0:
                choices.append((name, chance * 100.0))
        names = [c[0] for c in choices]
        action = rng.choices(names, weights=[c[1] for c in choices])[0]
        if action == "tick":
            self._random_tick()
        elif action == "advance":
            if rng.random() < 0.5:
                self.advance_to_timer(cap=rng.uniform(0.2, 3.0))
            else:
                self.advance(round(rng.uniform(0.05, 1.5), 2))
        elif action == "command":
            self._random_command()
        elif action == "commit":
            self.commit(None if rng.random() < 0.6 else rng.randint(0, max(1, len(self.store.queue))))
        elif action == "progress":
            self.broker_progress()
        elif action == "job":
            self._random_job()
        elif action == "release":
            self.release(rng.randrange(len(self.held_replies)))
        elif action == "crash":
            self.crash()
        elif action == "store":
            self.store_refuses(not self.store.refusing)
        elif action == "drop":
            if self.feed.dropped:
                self.feed_reconnect()
            else:
                self.feed_drop()
        elif action == "silent":
            self.feed_silent(not self.feed.silent)
        elif action == "external":
            self._random_external_close()

    def _random_tick(self) -> None:
        rng = self.rng
        plan = rng.choice(self.symbols)
        price = self.price(plan.symbol)
        move = rng.gauss(0.0, 0.004) if rng.random() < 0.9 else rng.choice((-1, 1)) * rng.uniform(0.008, 0.02)
        self.tick(plan.symbol, max(1.0, price * (1.0 + move)))

    def _random_job(self) -> None:
        rng, profile = self.rng, self.profile
        jobs = self.pending_jobs
        index = rng.randrange(len(jobs)) if len(jobs) > 1 and rng.random() < profile.reorder else 0
        faults = profile.order_faults if jobs[index].is_order else profile.call_faults
        fault = None
        if self.faults_on and faults:
            roll = rng.random()
            for name, chance in faults.items():
                if roll < chance:
                    fault = name
                    break
                roll -= chance
        self.run_job(index, fault)

    def _random_command(self) -> None:
        rng = self.rng
        open_trades = self.open_trades()
        names = ["create", "exit", "exitall", "pause", "modify"]
        weights = [5.0 if len(open_trades) < 6 else 0.5, 1.5, 0.2, 1.0, 1.0]
        kind = rng.choices(names, weights=weights)[0]
        if kind == "create" or not open_trades:
            plan = rng.choice(self.symbols)
            strategy = rng.choice(self.strategies).name
            self.create(plan.symbol, rng.randint(1, 20), strategy)
            return
        trade = rng.choice(open_trades)
        if kind == "exit":
            self.submit(ExitTrade(trade.id), f"exit #{trade.id}")
        elif kind == "exitall":
            self.submit(ExitAll(), "exit all")
        elif kind == "pause":
            self.submit(ResumeTrade(trade.id) if trade.paused else PauseTrade(trade.id),
                        f"{'resume' if trade.paused else 'pause'} #{trade.id}")
        else:
            price = self.price(trade.symbol)
            stop = trade.effective_stop
            if trade.status is not TradeStatus.ACTIVE or stop is None:
                self.submit(ExitTrade(trade.id), f"exit #{trade.id}")
                return
            new = stop + (price - stop) * rng.uniform(0.2, 0.7)  # tighter, still on the safe side of the price
            self.submit(ModifyTrade(trade.id, stop_loss=round(new, 2)), f"tighten stop #{trade.id}")

    def _random_external_close(self) -> None:
        rng = self.rng
        candidates = [p for p in self.symbols
                      if self.broker.tmtool_held.get((p.symbol, EXCHANGE, PRODUCT.value), 0) * p.side.sign > 0]
        if not candidates:
            self.advance(0.1)
            return
        plan = rng.choice(candidates)
        held = self.broker.tmtool_held[(plan.symbol, EXCHANGE, PRODUCT.value)] * plan.side.sign
        self.external_close(plan.symbol, rng.randint(1, held))

    # ---------------------------------------------------------------- the end of a run

    def settle(self, seconds: float = 90.0) -> None:
        """Stop the faults, deliver everything, let ``seconds`` pass; then check the end-of-run invariants."""
        self.faults_on = False
        if self.store.refusing:
            self.store_refuses(False)
        if self.feed.dropped:
            self.feed_reconnect()
        if self.feed.silent:
            self.feed_silent(False)
        end = self.clock.time() + seconds
        for _ in range(5000):
            if self.held_replies:
                self.release(0)
            elif self.pending_jobs:
                self.run_job(0)
            elif self.clock.time() < end:
                self.broker_progress()
                self.advance_to_timer(cap=min(2.0, end - self.clock.time()))
            else:
                break
        self.commit()
        self.checker.at_end()
        self._record("settled", self._state_line())
