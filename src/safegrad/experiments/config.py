"""Run configuration: :class:`TrainConfig`, presets and ``key=value`` overrides.

A run is described by one :class:`TrainConfig` (task, algorithm, safeguard, budget, evaluation,
logging); the algorithm's own hyper-parameters live in ``algo_config``, a mapping validated
against the algorithm's config dataclass (``SHACConfig`` ...).  User guide: ``docs/cli.md``.

Preset files (YAML) come in two kinds, told apart by their keys:

* **run preset** (``configs/runs/*.yaml``): keys are :class:`TrainConfig` fields; ``algo_config``
  is a mapping.  An optional ``preset:`` key (a path or a list of paths, relative to the file)
  names presets to load first; this file's keys then override them (``algo_config``,
  ``env_kwargs`` and ``safeguard_kwargs`` merge key by key).
* **algorithm preset** (``configs/<algo>_<task>.yaml``): keys are the algorithm's config fields
  only.  The algorithm is read from the file name (``shac_pendulum`` -> ``shac``) or from the
  ``algo`` chosen so far; the task from the rest of the name (``pendulum`` ->
  ``BalancePendulum-v0``) when no ``env`` was chosen yet.  ``seed``, ``dtype`` and ``device``
  go to the top level (one seed/dtype/device per run).

:func:`load_config` applies presets left to right, then overrides (``--set key=value``).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from safegrad.algos._config import ConfigMixin
from safegrad.experiments.registry import ALGOS, get_algo

__all__ = [
    "TrainConfig",
    "ConfigError",
    "load_config",
    "read_preset",
    "parse_value",
    "apply_override",
    "yaml_load",
    "TASK_DEFAULTS",
    "SHARED_KEYS",
]

#: spec A §6 budget (interactions summed over the N envs) and evaluation cadence per task
TASK_DEFAULTS: dict[str, tuple[int, int]] = {
    "BalancePendulum-v0": (100_000, 2_500),
    "BalanceQuadrotor-v0": (200_000, 5_000),
    "ManageHousehold-v0": (1_000_000, 10_000),
}
_FALLBACK_DEFAULTS = (100_000, 2_500)
#: keys that exist in TrainConfig and in every algorithm config (TrainConfig is authoritative)
SHARED_KEYS = ("seed", "dtype", "device")
_DICT_FIELDS = ("algo_config", "env_kwargs", "safeguard_kwargs")
_SIDES = ("env", "policy")
_POLICY_KEYS = ("policy_safeguard", "policy_safeguard_kwargs")
_DTYPES = ("float32", "float64")


class ConfigError(ValueError):
    """A configuration that cannot run (bad key, value or combination)."""


# --------------------------------------------------------------------------- YAML
class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` as a float (YAML 1.2 style)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def yaml_load(text: str) -> Any:
    """Parse YAML text (safe loader; ``1e-3`` is a float)."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def parse_value(text: str) -> Any:
    """The value of a ``--set key=value`` string: YAML scalars, lists and mappings
    (``8``, ``1e-3``, ``true``, ``null``/``none``, ``[64, 64]``, ``{grad_mode: passthrough}``);
    anything else stays a string."""
    if text.strip().lower() == "none":
        return None
    try:
        return yaml_load(text)
    except yaml.YAMLError:
        return text


def _suggest(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


# --------------------------------------------------------------------------- TrainConfig
@dataclass
class TrainConfig(ConfigMixin):
    """Everything a training run needs (spec A §6 protocol; ``docs/cli.md``).

    ``None`` in ``num_envs``, ``total_steps``, ``eval_every`` and ``threads`` means "the
    default" (the task's N, spec A §6 budget and cadence, one thread); :meth:`resolved` fills
    them in (the run directory stores the resolved config).
    """

    env: str = "BalancePendulum-v0"
    """Task id (``safegrad envs``)."""
    num_envs: int | None = None
    """Parallel training environments N (``None``: the task's paper value)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Task options passed to ``safegrad.make`` (e.g. ``max_episode_steps``)."""
    algo: str = "shac"
    """Learning algorithm: ``shac``, ``sac`` or ``ppo``."""
    algo_config: dict[str, Any] = field(default_factory=dict)
    """The algorithm's hyper-parameters (field names of ``SHACConfig`` / ``SACConfig`` /
    ``PPOConfig``); unset fields keep the dataclass defaults.  ``seed``, ``dtype`` and
    ``device`` are set at the top level."""
    safeguard: str | None = None
    """Safeguard name (``boundary-projection``, ``ray-mask``, ``ray-mask-tanh``,
    ``composite-cbf``, ``cbf-qp``) or ``None`` for unsafeguarded training (the monitor still
    counts violations)."""
    safeguard_kwargs: dict[str, Any] = field(default_factory=dict)
    """Constructor options of the safeguard (``grad_mode``, ``centre``, ...)."""
    safeguard_side: str = "env"
    """``env``: the safeguard wraps the environment (all algorithms; SHAC differentiates
    through it); ``policy``: the last policy layer (SAC/PPO with a ``policy_safeguard`` option)."""
    total_steps: int | None = None
    """Training budget in interactions summed over the N envs (``None``: spec A §6 value)."""
    seed: int = 0
    """Seeds python, numpy, torch, the algorithm and the training env."""
    device: str = "cpu"
    """Torch device of the env and the networks (``cpu``, ``cuda``, ``cuda:1``)."""
    dtype: str = "float32"
    """``float32`` or ``float64`` (env, networks and safeguard)."""
    threads: int | None = None
    """``torch.set_num_threads`` for the run (``None``: 1, the fastest for the papers' small
    networks and batches, and immune to oversubscription in sweeps; raise it for large
    networks on CPU)."""
    eval_every: int | None = None
    """Evaluate once at least this many interactions passed since the last evaluation, at
    learning-iteration granularity, and once at the end (``None``: spec A §6 cadence;
    0: only at the end)."""
    eval_episodes: int = 1
    """Episodes per evaluation (spec A §6: 1)."""
    eval_num_envs: int = 1
    """Environments of the evaluation env (spec A §6: 1)."""
    eval_seed: int = 0
    """Reset seed of the evaluation env (spec A §6: 0; round ``r`` uses ``eval_seed + r``)."""
    eval_at_start: bool = False
    """Also evaluate the initial policy (step 0)."""
    log_every: int = 0
    """Write a ``progress.csv`` row once this many interactions passed (0: every learning
    iteration); rows average the iteration logs in between.  Evaluations always write a row."""
    checkpoint_every: int = 10_000
    """Checkpoint once this many interactions passed since the last one (0: only at the end)."""
    keep_checkpoints: int = 2
    """Checkpoints kept on disk (the newest ones)."""
    tensorboard: bool = True
    """Write TensorBoard event files to ``RUN_DIR/tb``."""
    progress_bar: bool | None = None
    """Rich progress bar (``None``: on when stdout is a terminal and ``CI`` is not set)."""
    wandb: bool = False
    """Also log to Weights & Biases (``pip install safegrad[wandb]``; credentials from the
    environment / ``wandb login``, never from the config)."""
    wandb_project: str = "safegrad"
    """W&B project."""
    wandb_entity: str | None = None
    """W&B entity (team/user); ``None``: your default."""
    mlflow: bool = False
    """Also log to MLflow (``pip install safegrad[mlflow]``)."""
    mlflow_tracking_uri: str | None = None
    """MLflow tracking URI (``None``: ``$MLFLOW_TRACKING_URI`` or ``./mlruns``)."""
    mlflow_experiment: str = "safegrad"
    """MLflow experiment name."""
    name: str | None = None
    """Run name (``None``: ``<env>__<algo>__<safeguard>__seed<seed>``)."""

    # ------------------------------------------------------------------ construction
    def __post_init__(self) -> None:
        self._check_types()
        for k in _DICT_FIELDS:
            v = getattr(self, k)
            if v is None:
                object.__setattr__(self, k, {})
            elif not isinstance(v, Mapping):
                raise TypeError(
                    f"TrainConfig.{k}={v!r} has type {type(v).__name__}; expected a mapping"
                )
            else:
                object.__setattr__(self, k, dict(v))
        for k in ("total_steps", "num_envs", "threads"):
            v = getattr(self, k)
            if v is not None and v < 1:
                raise ConfigError(f"TrainConfig.{k}={v} must be >= 1 (or null for the default)")
        for k in ("eval_episodes", "eval_num_envs", "keep_checkpoints"):
            if getattr(self, k) < 1:
                raise ConfigError(f"TrainConfig.{k}={getattr(self, k)} must be >= 1")
        for k in ("eval_every", "log_every", "checkpoint_every", "eval_seed", "seed"):
            v = getattr(self, k)
            if v is not None and v < 0:
                raise ConfigError(f"TrainConfig.{k}={v} must be >= 0")
        if isinstance(self.algo, str):
            self.algo = self.algo.lower()
        if self.algo not in ALGOS:
            raise ConfigError(
                f"TrainConfig.algo={self.algo!r} is not an algorithm.{_suggest(self.algo, ALGOS)}"
                f" Expected one of {list(ALGOS)}"
            )
        if isinstance(self.safeguard, str) and self.safeguard.lower() in ("none", "null", ""):
            self.safeguard = None
        if self.safeguard_side not in _SIDES:
            raise ConfigError(
                f"TrainConfig.safeguard_side={self.safeguard_side!r}; expected one of {_SIDES}"
            )
        if self.dtype not in _DTYPES:
            raise ConfigError(f"TrainConfig.dtype={self.dtype!r}; expected one of {_DTYPES}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build from a mapping of field names; an unknown key raises :class:`ConfigError` with
        the close match (or says it belongs under ``algo_config``)."""
        if not isinstance(data, Mapping):
            raise TypeError(f"TrainConfig data must be a mapping, got {type(data).__name__}")
        names = cls.field_names()
        for key in data:
            if key not in names:
                hint = _suggest(str(key), names)
                if not hint:
                    algo_fields = _algo_field_names(data.get("algo", "shac"))
                    if key in algo_fields:
                        hint = (
                            f" {key!r} is a {data.get('algo', 'shac')} hyper-parameter: put it "
                            f"under algo_config (or --set algo_config.{key}=...)"
                        )
                raise ConfigError(f"unknown TrainConfig key {key!r}.{hint} Valid keys: {names}")
        return cls(**dict(data))

    # ------------------------------------------------------------------ derived
    def resolved(self) -> TrainConfig:
        """A copy with the ``None`` defaults filled in (task budget and cadence of spec A §6,
        the task's N, one thread, the run name); ``algo_config`` loses the shared keys and empty
        policy-safeguard keys."""
        from safegrad import envs

        total, cadence = TASK_DEFAULTS.get(self.env, _FALLBACK_DEFAULTS)
        upd: dict[str, Any] = {}
        if self.num_envs is None:
            try:
                upd["num_envs"] = envs.env_spec(self.env).default_num_envs
            except (KeyError, ValueError):
                upd["num_envs"] = None
        if self.total_steps is None:
            upd["total_steps"] = total
        if self.eval_every is None:
            upd["eval_every"] = cadence
        if self.threads is None:
            upd["threads"] = 1
        if self.name is None:
            sg = self.safeguard or "none"
            if self.safeguard and self.safeguard_side == "policy":
                sg += "-policy"
            upd["name"] = f"{self.env}__{self.algo}__{sg}__seed{self.seed}"
        algo_cfg = {
            k: v
            for k, v in self.algo_config.items()
            if k not in SHARED_KEYS and not (k in _POLICY_KEYS and not v)
        }
        upd["algo_config"] = algo_cfg
        out = dataclasses.replace(self, **upd)
        return out

    def algo_spec(self):
        """The :class:`~safegrad.experiments.registry.AlgoSpec` of :attr:`algo`."""
        return get_algo(self.algo)

    def algo_config_object(self, config_cls: type | None = None):
        """The algorithm's config dataclass built from ``algo_config`` plus the top-level
        ``seed``/``dtype``/``device`` (and ``policy_safeguard`` for a policy-side safeguard)."""
        if config_cls is None:
            config_cls = self.algo_spec().load()[1]
        data = {k: v for k, v in self.algo_config.items() if not (k in _POLICY_KEYS and not v)}
        for k in SHARED_KEYS:
            if k in config_cls.field_names():
                data[k] = getattr(self, k)
        if self.safeguard_side == "policy" and self.safeguard is not None:
            data["policy_safeguard"] = self.safeguard
            if self.safeguard_kwargs and "policy_safeguard_kwargs" in config_cls.field_names():
                data["policy_safeguard_kwargs"] = dict(self.safeguard_kwargs)
        try:
            return config_cls.from_dict(data)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"algo_config for {self.algo!r}: {err}") from None

    # ------------------------------------------------------------------ validation
    def validate(self) -> TrainConfig:
        """Check the combination against the registries (task, algorithm, safeguard); raise
        :class:`ConfigError` naming the bad value and what was expected.  Returns ``self``."""
        from safegrad import envs
        from safegrad._make import SAFEGUARDS

        env_ids = envs.list_envs()
        if self.env not in env_ids:
            raise ConfigError(
                f"TrainConfig.env={self.env!r} is not a registered task."
                f"{_suggest(self.env, env_ids)} Known tasks: {', '.join(env_ids)}"
            )
        task_cls = envs.env_spec(self.env).load()
        accepted = _init_params(task_cls)
        for k in self.env_kwargs:
            if k in ("num_envs", "seed", "device", "dtype"):
                raise ConfigError(
                    f"env_kwargs.{k}: set {k!r} at the top level of the config, not in env_kwargs"
                )
            if accepted is not None and k not in accepted:
                raise ConfigError(
                    f"env_kwargs.{k} is not an option of {self.env}.{_suggest(k, accepted)} "
                    f"Accepted: {', '.join(sorted(accepted))}"
                )
        if self.safeguard is not None:
            if self.safeguard not in SAFEGUARDS:
                raise ConfigError(
                    f"TrainConfig.safeguard={self.safeguard!r} is not a safeguard."
                    f"{_suggest(self.safeguard, SAFEGUARDS)} Expected one of "
                    f"{list(SAFEGUARDS)} or null"
                )
            if self.safeguard in ("composite-cbf", "cbf-qp") and not callable(
                getattr(task_cls, "cbf_constraints", None)
            ):
                cbf_tasks = [
                    e
                    for e in env_ids
                    if callable(getattr(envs.env_spec(e).load(), "cbf_constraints", None))
                ]
                raise ConfigError(
                    f"safeguard {self.safeguard!r} needs a task with CBF constraints "
                    f"({', '.join(cbf_tasks)}); {self.env} has none. Use 'boundary-projection', "
                    "'ray-mask' or 'ray-mask-tanh'"
                )
        elif self.safeguard_kwargs:
            raise ConfigError(
                f"safeguard_kwargs={self.safeguard_kwargs!r} given without a safeguard; set "
                "safeguard (e.g. --safeguard ray-mask)"
            )
        elif self.safeguard_side == "policy":
            raise ConfigError("safeguard_side='policy' needs a safeguard (e.g. ray-mask)")
        agent_cls, config_cls = self.algo_spec().load()
        algo_fields = config_cls.field_names()
        for k in _POLICY_KEYS:
            if self.algo_config.get(k):
                raise ConfigError(
                    f"algo_config.{k}: choose a policy-side safeguard at the top level "
                    "(safeguard: NAME, safeguard_side: policy, safeguard_kwargs: {...})"
                )
        for k, v in self.algo_config.items():
            if k in SHARED_KEYS:
                if v != getattr(self, k):
                    raise ConfigError(
                        f"algo_config.{k}={v!r} conflicts with {k}={getattr(self, k)!r}: one "
                        f"{k} per run; set it at the top level (--{k} or --set {k}=...)"
                    )
                continue
            if k not in algo_fields:
                hint = _suggest(k, algo_fields)
                if not hint and k in self.field_names():
                    hint = f" {k!r} is a TrainConfig key: set it at the top level"
                elif not hint:
                    top = _suggest(k, self.field_names())
                    if top:
                        hint = top[:-1] + " (a TrainConfig key)?"
                raise ConfigError(
                    f"algo_config.{k} is not a {config_cls.__name__} field.{hint} "
                    f"Valid: {', '.join(algo_fields)}"
                )
        if self.safeguard is not None and self.safeguard_side == "policy":
            if "policy_safeguard" not in algo_fields:
                raise ConfigError(
                    f"{self.algo} cannot use a policy-side safeguard (safeguard_side='policy'): "
                    + (
                        "SHAC back-propagates through the environment-side safeguard; use "
                        "safeguard_side='env'"
                        if self.algo == "shac"
                        else f"{config_cls.__name__} has no policy_safeguard option"
                    )
                )
        c_reg = self.algo_config.get("c_reg", 0.0)
        if self.safeguard is None and isinstance(c_reg, (int, float)) and c_reg > 0:
            raise ConfigError(
                f"algo_config.c_reg={c_reg} > 0 (regularisation towards the safe action, "
                "spec A Eq. 17) needs a safeguard; set safeguard or c_reg: 0"
            )
        import importlib.util

        for flag, pkg in (("wandb", "wandb"), ("mlflow", "mlflow")):
            if getattr(self, flag) and importlib.util.find_spec(pkg) is None:
                raise ConfigError(
                    f"{flag}: true needs the {pkg} package: pip install 'safegrad[{pkg}]' "
                    f"(or set {flag}: false)"
                )
        if self.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ConfigError(f"device={self.device!r} but torch sees no CUDA device")
        self.algo_config_object(config_cls)  # field types and ranges
        return self


def _init_params(cls: type) -> set[str] | None:
    """Keyword parameters of ``cls.__init__`` (``None`` if it takes ``**kwargs``)."""
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return None
    out = set()
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.name != "self":
            out.add(p.name)
    return out


def _algo_field_names(algo: Any) -> list[str]:
    try:
        return list(get_algo(str(algo)).load()[1].field_names())
    except (ImportError, ValueError):
        return []


# --------------------------------------------------------------------------- presets
def _task_from_stem(rest: str) -> str | None:
    from safegrad import envs

    key = rest.lower().replace("_", "").replace("-", "")
    if not key:
        return None
    hits = [e for e in envs.list_envs() if key in e.lower().replace("-", "")]
    return hits[0] if len(hits) == 1 else None


def _merge(base: dict[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in new.items():
        if k in _DICT_FIELDS and isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def read_preset(path: str | Path, current: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The raw :class:`TrainConfig` mapping a preset file contributes (module docstring for
    the two formats).  ``current`` is the mapping built so far (for an algorithm preset it
    gives the algorithm when the file name does not)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"preset {str(path)!r} does not exist")
    try:
        data = yaml_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a preset must be a mapping of keys, got {type(data).__name__}")
    current = dict(current or {})
    out: dict[str, Any] = {}
    includes = data.pop("preset", None)
    if includes is not None:
        for inc in [includes] if isinstance(includes, (str, Path)) else includes:
            inc_path = Path(inc)
            if not inc_path.is_absolute():
                inc_path = path.parent / inc_path
            out = _merge(out, read_preset(inc_path, _merge(current, out)))
    train_only = set(TrainConfig.field_names()) - set(SHARED_KEYS)
    stem = path.stem
    algo_from_name = None
    head, _, rest = stem.partition("_")
    if head.lower() in ALGOS:
        algo_from_name = head.lower()
    is_run = bool(set(data) & train_only) or (not data and algo_from_name is None)
    if is_run:
        try:
            return _merge(out, data)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
    # algorithm preset
    algo = algo_from_name or out.get("algo") or current.get("algo")
    if algo is None:
        raise ConfigError(
            f"{path}: cannot tell which algorithm this preset is for; name it "
            "<algo>_<task>.yaml (e.g. shac_pendulum.yaml) or pass --algo"
        )
    algo = str(algo).lower()
    if algo not in ALGOS:
        raise ConfigError(f"{path}: unknown algorithm {algo!r}; expected one of {list(ALGOS)}")
    chosen = out.get("algo") or current.get("algo")
    if algo_from_name and chosen and chosen != algo_from_name:
        raise ConfigError(
            f"{path} is a {algo_from_name} preset but algo={chosen!r} was chosen before it"
        )
    contrib: dict[str, Any] = {"algo": algo}
    if algo_from_name and "env" not in out and "env" not in current:
        task = _task_from_stem(rest)
        if task is not None:
            contrib["env"] = task
    algo_cfg = {}
    for k, v in data.items():
        if k in SHARED_KEYS:
            contrib[k] = v
        elif k == "policy_safeguard":
            if v is not None:  # a policy-side safeguard is chosen at the top level
                contrib["safeguard"] = v
                contrib["safeguard_side"] = "policy"
        elif k == "policy_safeguard_kwargs":
            if v:
                contrib["safeguard_kwargs"] = dict(v)
        else:
            algo_cfg[k] = v
    contrib["algo_config"] = algo_cfg
    return _merge(out, contrib)


def apply_override(data: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    """Set ``key`` (``total_steps``, ``algo_config.horizon``, ``env_kwargs.max_episode_steps``,
    or a bare algorithm field such as ``horizon``) in the raw mapping ``data`` (in place)."""
    if not isinstance(key, str) or not key:
        raise ConfigError(f"override key {key!r} must be a non-empty string")
    names = TrainConfig.field_names()
    head, dot, rest = key.partition(".")
    if dot:
        if head not in _DICT_FIELDS:
            raise ConfigError(
                f"override {key!r}: only {', '.join(_DICT_FIELDS)} take a dotted key "
                f"(e.g. algo_config.horizon=8).{_suggest(head, list(_DICT_FIELDS))}"
            )
        if "." in rest or not rest:
            raise ConfigError(f"override {key!r}: expected {head}.<name>")
        sub = dict(data.get(head) or {})
        sub[rest] = value
        data[head] = sub
    elif key in names:
        if key in _DICT_FIELDS and isinstance(value, Mapping):
            data[key] = {**(data.get(key) or {}), **value}
        else:
            data[key] = value
    else:
        sub = dict(data.get("algo_config") or {})
        sub[key] = value
        data["algo_config"] = sub
    return data


def load_config(
    presets: Sequence[str | Path] = (),
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
    *,
    base: Mapping[str, Any] | None = None,
    validate: bool = True,
) -> TrainConfig:
    """Build a :class:`TrainConfig`: ``base`` mapping, then ``presets`` left to right, then
    ``overrides`` (a mapping ``key -> value`` or ``"key=value"`` strings; see
    :func:`apply_override`).  Validates (:meth:`TrainConfig.validate`) unless told not to."""
    data: dict[str, Any] = dict(base or {})
    for p in presets:
        data = _merge(data, read_preset(p, data))
    items: list[tuple[str, Any]] = []
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    elif overrides:
        for s in overrides:
            if not isinstance(s, str) or "=" not in s:
                raise ConfigError(f"override {s!r} must look like key=value")
            k, _, v = s.partition("=")
            items.append((k.strip(), parse_value(v)))
    for k, v in items:
        if k == "algo" and isinstance(v, str) and data.get("algo") not in (None, v.lower()):
            # switching algorithm drops the previous algorithm's hyper-parameters
            data.pop("algo_config", None)
        apply_override(data, k, v)
    try:
        cfg = TrainConfig.from_dict(data)
    except TypeError as err:
        raise ConfigError(str(err)) from None
    return cfg.validate() if validate else cfg
