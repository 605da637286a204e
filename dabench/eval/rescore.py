"""Re-score a run's logged predictions under another suite's protocol, without loading any model
(``dabench rescore --run RUN --suite S``).

A run made with ``--log-samples=pred`` keeps every raw prediction (float32, as the run scored it,
``dabench.eval.samplelog``). Re-scoring takes, for every (model, dataset) record of that run:

1. suite S's protocol for the dataset (``resolve_protocol``, as ``dabench run --suite S`` would
   resolve it: the dataset's own entry, or S's defaults when the dataset is the synthetic stand-in of
   S's datasets). S must score the same split; the run's ``--limit`` and ``--skip-missing`` are kept,
   and the scored sample ids must hash to the run's (``selection.indices_sha256``);
2. the inference protocol: input size (S's, or the model's native size where S says null), flip TTA
   and precision (``--input-size``, ``--flip-tta``, ``--precision`` as for ``run``; precision defaults
   to fp32 as ``run``'s does) must be what produced the logged predictions; otherwise
   ``InferenceMismatch`` names both, unless ``allow_inference_mismatch`` (then the record keeps the
   run's inference values in its protocol and the difference in ``inference_mismatch``). A KB window
   crop in one and not the other is always refused: the network saw another image;
3. the ground truth, read again from the dataset (the run's data root unless ``data_root``), each
   sample prepared (``prepare_sample``) and scored by ``dabench.eval.scoring.score_sample`` — the same
   per-sample scorer, sums, per-image averages, pixel-pooled values and bootstrap intervals (the run's
   seed and resample count) as a direct run, so the records equal ``dabench run --suite S`` on the same
   samples;
4. records with ``rescored_from: <run id>`` under a new run id (``runs/<new id>/``, a manifest saying
   ``rescored_from``) and in the latest view, like any run's.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from dabench.errors import ConfigError, DataError, MissingFileError
from dabench.eval.suites import Protocol, Suite

DEPTH_TASKS = ("relative", "metric", "metric_da2")
#: what a record carries about the model, copied from the run's record to the re-scored one
MODEL_FIELDS = ("model_source", "model_revision", "model_location", "model_options", "output_space", "is_metric",
                "data_config", "native_input_size")
#: config keys ``base_record`` sets itself from the model and dataset
_MODEL_CONFIG_KEYS = ("model", "arch", "checkpoint", "random_init", "model_source", "model_location", "model_options",
                      "dataset")


class InferenceMismatch(ConfigError):
    """Suite S would have run the model differently (input size, flip TTA, precision) from the run."""


@dataclass
class LoggedRun:
    """A run folder (``runs/<run_id>``) and its scored depth records."""

    run_id: str
    folder: Path
    results_dir: Path | None  # the results folder holding runs/<run_id>, when the folder sits in one
    records: list[dict]

    def samples_folder(self, model: str, dataset: str) -> Path:
        """``runs/<id>/samples/<model>/<dataset>``, refused if a name would leave the run folder."""
        from dabench.results.store import safe_name
        from dabench.safety import safe_join

        return safe_join(self.folder, "samples", safe_name(model), safe_name(dataset), what="logged sample folder",
                         error=DataError)

    @property
    def datasets(self) -> list[str]:
        return list(dict.fromkeys(str(r["dataset"]) for r in self.records))


def open_run(run: str | Path, results_dir: str | Path | None = None) -> LoggedRun:
    """The run ``run`` names: a ``runs/<id>`` folder, or a run id under ``results_dir`` (default: the
    results directory, ``$DABENCH_HOME/results``)."""
    from dabench.provenance import default_results_dir
    from dabench.results.store import RUNS_DIR, load_records, run_dir

    text = str(run)
    path = Path(text).expanduser()
    if path.is_dir():
        folder = path
        holder = folder.resolve().parent
        results = Path(results_dir) if results_dir else (holder.parent if holder.name == RUNS_DIR else None)
    elif "/" in text or "\\" in text:
        raise MissingFileError(f"run folder {path} does not exist")
    else:
        results = Path(results_dir) if results_dir else default_results_dir()
        folder = run_dir(results, text)
        if not folder.is_dir():
            raise MissingFileError(f"no run {text!r} under {results / RUNS_DIR} (dabench results ls --history "
                                   "lists the runs)")
    records = [r for r in load_records(folder) if r.get("status") == "ok" and r.get("task") in DEPTH_TASKS]
    if not records:
        raise DataError(f"run folder {folder} holds no scored depth record ({', '.join(DEPTH_TASKS)} suites)")
    seen: set[tuple[str, str]] = set()
    for r in records:
        key = (str(r["model"]), str(r["dataset"]))
        if key in seen:
            raise DataError(f"run folder {folder} holds two records of {key[0]} on {key[1]}; one run scores each "
                            "model on each dataset once")
        seen.add(key)
    return LoggedRun(folder.name, folder, results, records)


# ---------------------------------------------------------------------------------------------
# the inference protocol: what produced the predictions
# ---------------------------------------------------------------------------------------------

def precision_name(amp_dtype) -> str:
    """``fp32``, ``bf16`` or ``fp16`` for a ``--precision`` value (None = fp32)."""
    from dabench.models.inference import resolve_amp_dtype

    dtype = resolve_amp_dtype(amp_dtype)
    return "fp32" if dtype is None else {"torch.bfloat16": "bf16", "torch.float16": "fp16"}[str(dtype)]


def run_inference(record: dict) -> dict[str, Any]:
    """The inference protocol a run record's predictions were made with."""
    from dabench.data.crops import is_window_crop

    proto = record.get("protocol") or {}
    return {"input_size": proto.get("input_size"), "flip_tta": bool(proto.get("flip_tta", False)),
            "precision": precision_name((record.get("config") or {}).get("amp_dtype")),
            "window_crop": is_window_crop(str(proto.get("crop") or "none"))}


def suite_inference(protocol: Protocol, record: dict, precision) -> dict[str, Any]:
    """The inference protocol a direct run of the suite would use for the record's model: a null
    ``input_size`` is the model's native size (``native_input_size`` of the record, else its
    ``data_config``); a model that sizes its input itself (recorded ``input_size`` null) stays null."""
    from dabench.data.crops import is_window_crop

    size = protocol.input_size
    recorded = (record.get("protocol") or {}).get("input_size")
    if recorded is None:
        size = None  # its processor or pipeline sizes the input (Protocol.for_model)
    elif size is None:
        size = record.get("native_input_size") or (record.get("data_config") or {}).get("input_size") or recorded
    return {"input_size": size, "flip_tta": bool(protocol.flip_tta), "precision": precision_name(precision),
            "window_crop": is_window_crop(protocol.crop)}


def inference_mismatch(run: dict[str, Any], suite: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{field: {"run": value, "suite": value}}`` for every inference field that differs."""
    return {k: {"run": run[k], "suite": suite[k]} for k in run if run[k] != suite[k]}


def _describe(values: dict[str, Any], keys) -> str:
    return ", ".join(f"{k} {values[k]}" for k in keys)


# ---------------------------------------------------------------------------------------------
# the plan: which records, under which protocol
# ---------------------------------------------------------------------------------------------

@dataclass
class Target:
    """One (model, dataset) record of the run, to be scored under ``protocol``."""

    record: dict
    protocol: Protocol  # S's, with the inference fields that produced the predictions
    mismatch: dict[str, dict[str, Any]]


@dataclass
class DatasetPlan:
    dataset: str
    card: dict
    protocol: Protocol  # S's for this dataset (inference fields as S resolves them)
    fallback_for: list[str] | None
    targets: list[Target] = field(default_factory=list)


def plan_rescore(logged: LoggedRun, suite: Suite, *, input_size: int | None = None, flip_tta: bool | None = None,
                 precision=None, allow_inference_mismatch: bool = False) -> tuple[list[DatasetPlan], list[str]]:
    """Which of the run's records suite ``suite`` scores, each with its protocol; and notes on what it
    leaves out (a dataset S does not score, a relative model in a metric suite)."""
    from dabench.data import load_card
    from dabench.eval.models import metric_mismatch
    from dabench.eval.suites import resolve_protocol
    from dabench.models.resolve import run_from_record

    if suite.task not in DEPTH_TASKS:
        raise ConfigError(f"suite {suite.name!r} is a {suite.task} suite; rescore scores depth suites "
                          f"({', '.join(DEPTH_TASKS)})")
    plans, notes = [], []
    not_metric: list[str] = []
    unscored: list[str] = []
    for ds in logged.datasets:
        card = load_card(ds)  # a dataset name from the run's records: a known card, or an error naming it
        in_suite = ds in suite.dataset_names
        stands_for = [d for d in suite.dataset_names if load_card(d).get("fallback") == ds] if not in_suite else []
        if not in_suite and not stands_for:
            unscored.append(ds)
            continue
        proto = resolve_protocol(suite, ds, card, overrides={"flip_tta": flip_tta, "input_size": input_size},
                                 in_suite=in_suite)
        plan = DatasetPlan(ds, card, proto, stands_for or None)
        for rec in (r for r in logged.records if r["dataset"] == ds):
            fields = {k: rec.get(k) for k in MODEL_FIELDS}
            if metric_mismatch(suite, run_from_record(rec), {**fields, "is_metric": bool(fields["is_metric"])}):
                not_metric += [str(rec["model"])] if str(rec["model"]) not in not_metric else []
                continue
            ran, wanted = run_inference(rec), suite_inference(proto, rec, precision)
            diff = inference_mismatch(ran, wanted)
            keys = list(diff) or ["input_size"]
            where = f"{rec['model']} on {ds}"
            if "window_crop" in diff:
                raise InferenceMismatch(
                    f"suite {suite.name!r} {'crops' if wanted['window_crop'] else 'does not crop'} {ds} to the KB "
                    f"window before inference and run {logged.run_id} {'did' if ran['window_crop'] else 'did not'}: "
                    f"the logged predictions of {where} cover another image and cannot be re-scored")
            if diff and not allow_inference_mismatch:
                raise InferenceMismatch(
                    f"suite {suite.name!r} would run {where} with {_describe(wanted, keys)}; run {logged.run_id} "
                    f"predicted with {_describe(ran, keys)}. Pass the run's values (--input-size, --flip-tta, "
                    "--precision) or --allow-inference-mismatch to score its predictions anyway (recorded)")
            scored = replace(proto, input_size=ran["input_size"], flip_tta=ran["flip_tta"])
            plan.targets.append(Target(rec, scored, diff))
        if plan.targets:
            plans.append(plan)
    if unscored:
        it = "does it" if len(unscored) == 1 else "do they"
        notes.append(f"suite {suite.name} does not score {', '.join(unscored)} (nor {it} stand in for one of its "
                     "datasets)")
    if not_metric:
        notes.append(f"suite {suite.name} ({suite.task}) scores metric depth in metres; {', '.join(not_metric)} "
                     f"{'does' if len(not_metric) == 1 else 'do'} not predict it (fine-tune a metric head first)")
    if not plans:
        raise ConfigError(f"suite {suite.name!r} scores none of run {logged.run_id}'s records"
                          + (f": {'; '.join(notes)}" if notes else ""))
    return plans, notes


# ---------------------------------------------------------------------------------------------
# scoring
# ---------------------------------------------------------------------------------------------

def _run_limit(records: list[dict]):
    from dabench.results.record import selection_of

    limits = {selection_of(r)["limit"] for r in records}
    if len(limits) != 1:
        raise DataError(f"the run's records of {records[0]['dataset']} were made with different --limit values "
                        f"{sorted(map(str, limits))}")
    return limits.pop()


def _data_root(records: list[dict], data_root):
    """--data-root, else the folder the run read (when it exists here), else $DABENCH_DATA."""
    from dabench.provenance import data_root as resolve_root

    if data_root:
        return resolve_root(data_root)
    roots = [(r.get("config") or {}).get("data_root") for r in records]
    recorded = next((x for x in roots if x), None)
    if recorded and Path(str(recorded)).is_dir():
        return Path(str(recorded))
    return resolve_root(None)


def score_logged(dataset, protocol: Protocol, targets: list[tuple[str, str, Path]], *, progress=None,
                 description: str = "") -> tuple[dict[str, Any], dict[str, str]]:
    """Every sample of ``dataset`` prepared under ``protocol`` and each target's logged prediction scored
    against it. ``targets``: (label, output space, samples folder). Returns ``({label: DatasetResult},
    {label: logged prediction dtype})``, rows and counts as ``dabench.eval.loop.evaluate`` makes them."""
    from dabench.eval.loop import DatasetResult
    from dabench.eval.samplelog import read_logged_prediction
    from dabench.eval.scoring import prepare_sample, score_sample
    from dabench.metrics.depth import DepthMetricState
    from dabench.metrics.registry import depth_engine_metrics
    from dabench.results.store import sample_file_name
    from dabench.safety import safe_join

    t0 = time.time()
    metrics = depth_engine_metrics(protocol.metric_family)
    states = {label: DepthMetricState(metrics) for label, _, _ in targets}
    rows: dict[str, list[dict]] = {label: [] for label, _, _ in targets}
    degenerate = dict.fromkeys(states, 0)
    dtypes: dict[str, str] = {}
    task = progress.add_task(description, total=len(dataset)) if progress is not None else None
    for idx in range(len(dataset)):
        s = prepare_sample(dataset[idx], protocol)
        name = str(s.get("name", idx))
        shape = np.asarray(s["depth"]).shape
        for label, space, folder in targets:
            path = safe_join(folder, f"{sample_file_name(name)}.npz", what="logged sample", error=DataError)
            pred, logged_space = read_logged_prediction(path, shape, name)
            if logged_space and logged_space != space:
                raise DataError(f"{path}: logged in {logged_space} space; the run's record of {label} says {space}")
            dtypes[label] = str(pred.dtype) if pred.dtype != np.float32 else dtypes.get(label, "float32")
            status, m, info = score_sample(pred.astype(np.float32, copy=False), s, protocol, space, name=name)
            state = states[label]
            if status == "ok":
                state.update_sums(info["sums"])
            elif status == "skipped_no_valid":
                state.skipped_no_valid += 1
            else:
                degenerate[label] += 1
            rows[label].append({"index": idx, "name": name, "status": status, "valid_pixels": info["valid_pixels"],
                                "scale": info.get("scale"), "shift": info.get("shift"),
                                **{k: (m[k] if m else None) for k in state.metrics}})
        if progress is not None:
            progress.update(task, advance=1)
    out = {}
    for label, state in states.items():
        counts = {"used": int(state.n_images), "skipped_no_valid": int(state.skipped_no_valid),
                  "skipped_degenerate": degenerate[label],
                  "skipped_missing": int(getattr(dataset, "skipped_missing", 0) or 0), "total": len(dataset)}
        out[label] = DatasetResult(state.compute(), state.compute("pixel"), counts, rows[label], 0, 0, time.time() - t0)
    return out, dtypes


@dataclass
class Rescored:
    """What ``rescore_run`` returns: the records (one per scored model × dataset), the new run id, the
    run they were re-scored from, and notes on what was left out."""

    records: list[dict]
    run_id: str
    rescored_from: str
    notes: list[str]


def rescore_run(run: str | Path, suite: str | Path | Suite, *, results_dir=None, data_root=None,
                input_size: int | None = None, flip_tta: bool | None = None, precision=None,
                allow_inference_mismatch: bool = False, bootstrap: int | None = None, write: bool = True,
                console=None, table_console=None, show_progress: bool = True, print_table: bool = False,
                logged: LoggedRun | None = None) -> Rescored:
    """Score run ``run``'s logged predictions under ``suite`` (see the module doc). ``bootstrap``:
    resamples of the CIs (default: the run's); ``write``: write records, CSVs and a manifest (the
    results folder: ``results_dir``, else the one holding the run)."""
    from rich.console import Console

    from dabench.data import build_dataset
    from dabench.eval.plan import split_size
    from dabench.eval.records import add_scores, base_record, data_source, write_samples_csv
    from dabench.eval.suites import load_suite
    from dabench.models.resolve import run_from_record
    from dabench.provenance import default_results_dir
    from dabench.results.record import indices_hash, make_run_id, make_selection
    from dabench.results.store import history_path, samples_csv_path, write_record

    console = console or Console(stderr=True)
    logged = logged or open_run(run, results_dir)
    suite = load_suite(suite)
    if bootstrap is not None and bootstrap < 0:
        raise ConfigError(f"--bootstrap must be >= 0 resamples, got {bootstrap}")
    plans, notes = plan_rescore(logged, suite, input_size=input_size, flip_tta=flip_tta, precision=precision,
                                allow_inference_mismatch=allow_inference_mismatch)
    out_dir = Path(results_dir) if results_dir else (logged.results_dir or default_results_dir())
    new_id = make_run_id(salt=f"{suite.name}:{logged.run_id}")
    records: list[dict] = []
    for plan in plans:
        recs = [t.record for t in plan.targets]
        limit, root = _run_limit(recs), _data_root(recs, data_root)
        skip_missing = bool((recs[0].get("config") or {}).get("skip_missing"))
        proto = plan.protocol
        extra = {} if plan.card.get("reader") == "synthetic" else {"depth_range": (proto.min_depth, proto.max_depth)}
        dataset = build_dataset(plan.dataset, split=proto.split, data_root=root, limit=limit, skip_missing=skip_missing,
                                **extra)
        split = proto.split or getattr(dataset, "split", None)
        for rec in recs:
            if rec.get("split") and split and rec["split"] != split:
                raise ConfigError(f"suite {suite.name!r} scores the {split!r} split of {plan.dataset}; run "
                                  f"{logged.run_id} logged the {rec['split']!r} split")
        targets = [(str(t.record["model"]), str(t.record.get("output_space") or "disparity"),
                    logged.samples_folder(str(t.record["model"]), plan.dataset)) for t in plan.targets]
        for label, _, folder in targets:
            if not folder.is_dir():
                raise MissingFileError(f"run {logged.run_id} logged no predictions of {label} on {plan.dataset} "
                                       f"({folder} is missing): rerun with --log-samples=pred")
        if show_progress:
            from dabench.progress import progress_bar

            with progress_bar(console) as prog:
                results, dtypes = score_logged(dataset, proto, targets, progress=prog,
                                               description=f"rescore {suite.name} · {plan.dataset}")
        else:
            results, dtypes = score_logged(dataset, proto, targets)
        n_total = None
        for t in plan.targets:
            rec0, label = t.record, str(t.record["model"])
            res = results[label]
            rows = res.rows or []
            sel = rec0.get("selection") or {}
            names = [r["name"] for r in rows]
            if sel.get("indices_sha256") and sel["indices_sha256"] != indices_hash(names):
                raise DataError(f"{plan.dataset} no longer holds the samples run {logged.run_id} scored for {label} "
                                f"({len(names)} samples now, {sel.get('n_selected')} then; sample-id hashes differ)")
            if dtypes.get(label, "float32") != "float32":
                console.print(f"[yellow]{label} on {plan.dataset}: the run logged {dtypes[label]} predictions "
                              "(--log-samples); re-scores equal a direct run only from --log-samples=pred[/yellow]")
            seed = rec0.get("seed") or 0
            resamples = int((rec0.get("config") or {}).get("bootstrap") or 0) if bootstrap is None else bootstrap
            config = {k: v for k, v in (rec0.get("config") or {}).items() if k not in _MODEL_CONFIG_KEYS}
            config.update(suite=suite.name, suite_path=suite.path, data_root=str(root) if root else None,
                          datasets=[p.dataset for p in plans], flip_tta_override=flip_tta,
                          input_size_override=input_size, amp_dtype=None if precision_name(precision) == "fp32" else
                          precision_name(precision), bootstrap=resamples, rescored_from=logged.run_id)
            model_fields = {k: rec0[k] for k in MODEL_FIELDS if k in rec0}
            fb = {"fallback_for": plan.fallback_for} if plan.fallback_for else None
            rec = base_record(suite, run_from_record(rec0), plan.dataset, t.protocol, config, seed,
                              rec0.get("model_params"), rec0.get("checkpoint_sha256"), new_id,
                              data_source(plan.card, root, fb), model_fields=model_fields)
            rec["samples"] = {k: res.counts[k] for k in ("used", "skipped_no_valid", "skipped_degenerate",
                                                         "skipped_missing")}
            rec["split"] = split
            if n_total is None:
                n_total = split_size(plan.dataset, proto.split, root, dataset, limit)
            rec["selection"] = make_selection(limit, names, len(rows), n_total)
            add_scores(rec, res, rows, proto, plan.dataset, resamples, seed)
            rec.update(rescored_from=logged.run_id, inference_mismatch=t.mismatch or None,
                       prediction_dtype=dtypes.get(label, "float32"), seconds=round(res.seconds, 3))
            if write:
                path = write_record(rec, out_dir)
                write_samples_csv(samples_csv_path(path), rows, proto.metric_family)
                write_samples_csv(samples_csv_path(history_path(out_dir, rec)), rows, proto.metric_family)
            records.append(rec)
    if write:
        _write_manifest(out_dir, new_id, suite, records, logged.run_id)
    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    if print_table and records:
        from dabench.results.tables import print_suite_table

        print_suite_table(records, suite, console=table_console or Console())
    return Rescored(records, new_id, logged.run_id, notes)


def _write_manifest(results_dir, run_id: str, suite: Suite, records: list[dict], rescored_from: str) -> None:
    import sys

    from dabench.provenance import git_commit, now_iso
    from dabench.results.record import is_complete
    from dabench.results.store import write_run_manifest

    if not records:
        return
    write_run_manifest(results_dir, run_id, {
        "date": min(str(r.get("date") or now_iso()) for r in records), "finished": now_iso(), "suite": suite.name,
        "models": sorted({str(r.get("model")) for r in records}),
        "datasets": sorted({str(r.get("dataset")) for r in records}),
        "limit": (records[0].get("selection") or {}).get("limit"), "seed": records[0].get("seed"),
        "complete": all(is_complete(r) for r in records if r.get("status") == "ok"),
        "records": len(records), "git_commit": git_commit(), "argv": sys.argv[1:], "rescored_from": rescored_from})
