#!/usr/bin/env python3
"""sklearn-iris: an edp command job that trains a scikit-learn classifier on Iris.

    python3 ./train.py              read $EDP_CONFIG, train, write model.pkl,
                                    metrics.json and config.resolved.json
                                    into $EDP_OUTPUT_DIR
    python3 ./train.py --validate   check $EDP_CONFIG only (needs PyYAML,
                                    not scikit-learn)

The config has the shape of the built-in job's (run_config, train_test_split,
model); see configs/ and README.md. Iris is the copy scikit-learn ships: no
network is needed.

Exit status, as the edp command-job contract reads it:
    0    success: every file in $EDP_OUTPUT_DIR is published
    64   usage error (bad argument or environment)        permanent
    65   invalid config                                   permanent
    66   config missing or unreadable                     permanent
    69   scikit-learn or PyYAML is not installed          retried
    74   an output could not be written                   retried
    143  stopped by SIGTERM                               retried
A permanent failure prints its reason as one line on stderr, the last line of
the output: the run record keeps the tail of it.
"""

import json
import math
import os
import pickle
import platform
import re
import signal
import sys

PROG = "train.py"
EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_UNAVAILABLE, EX_IOERR = 64, 65, 66, 69, 74
MAX_CONFIG_BYTES = 64 * 1024
IRIS_ROWS, IRIS_FEATURES, IRIS_CLASSES = 150, 4, 3
INSTALL_HINT = "apt-get install python3-sklearn python3-yaml, or pip install -r requirements.txt"

MODEL_TYPES = {  # config name -> scikit-learn class; the class names are accepted too
    "decision_tree": "DecisionTreeClassifier",
    "random_forest": "RandomForestClassifier",
}
MODEL_ALIASES = {cls: name for name, cls in MODEL_TYPES.items()}
COMMON_PARAMS = ("criterion", "max_depth", "min_samples_split", "min_samples_leaf", "max_features", "random_state")
MODEL_PARAMS = {
    "decision_tree": COMMON_PARAMS,
    "random_forest": COMMON_PARAMS + ("n_estimators", "bootstrap"),
}
VERSION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def on_sigterm(signum, frame):
    # The run is retried (or taken by another task): nothing to save, stop now,
    # even in the middle of a fit.
    sys.stderr.write(f"{PROG}: stopped by SIGTERM\n")
    sys.stderr.flush()
    os._exit(143)


def die(status, message):
    sys.stdout.flush()
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    sys.exit(status)


def import_or_die(module, package):
    try:
        return __import__(module)
    except ImportError as e:
        die(EX_UNAVAILABLE, f"{package} is not importable by {sys.executable} ({e}); install it: {INSTALL_HINT}")


class ConfigError(Exception):
    pass


# --- the config --------------------------------------------------------------


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_float(v):
    return isinstance(v, float)


def show(value):
    """value as the config would spell it (JSON), for a message."""
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return repr(value)


def mapping(value, path, allowed, problems):
    """Returns value (a mapping, or {} for null), noting unknown keys."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.append(f"{path}: must be a mapping, got {type(value).__name__}")
        return {}
    for key in value:
        if key not in allowed:
            where = f"{path}.{key}" if path else str(key)
            problems.append(f"{where}: unknown key (allowed: {', '.join(allowed)})")
    return value


def check_param(name, v, problems):
    where = f"model.params.{name}"
    if name == "criterion":
        ok = v in ("gini", "entropy", "log_loss")
        want = "gini, entropy or log_loss"
    elif name == "max_depth":
        ok = v is None or (is_int(v) and v >= 1)
        want = "an integer >= 1 or null"
    elif name == "min_samples_split":
        ok = (is_int(v) and v >= 2) or (is_float(v) and 0.0 < v <= 1.0)
        want = "an integer >= 2 or a fraction in (0.0, 1.0]"
    elif name == "min_samples_leaf":
        ok = (is_int(v) and v >= 1) or (is_float(v) and 0.0 < v < 1.0)
        want = "an integer >= 1 or a fraction in (0.0, 1.0)"
    elif name == "max_features":
        ok = v is None or v in ("sqrt", "log2") or (is_int(v) and 1 <= v <= IRIS_FEATURES) or (is_float(v) and 0.0 < v <= 1.0)
        want = f"sqrt, log2, an integer from 1 to {IRIS_FEATURES}, a fraction in (0.0, 1.0] or null"
    elif name == "random_state":
        ok = v is None or (is_int(v) and 0 <= v <= 2**32 - 1)
        want = "an integer from 0 to 4294967295 or null"
    elif name == "n_estimators":
        ok = is_int(v) and 1 <= v <= 5000
        want = "an integer from 1 to 5000"
    elif name == "bootstrap":
        ok = isinstance(v, bool)
        want = "true or false"
    else:  # not reached: unknown names are refused before
        ok, want = False, "a known parameter"
    if not ok:
        problems.append(f"{where}: must be {want}, got {show(v)}")


def resolve(doc):
    """Checks a parsed config and returns it with every default filled in.

    Raises ConfigError naming every problem found, on one line.
    """
    problems = []
    if doc is None:
        raise ConfigError("the config is empty (it needs at least model.type)")
    if not isinstance(doc, dict):
        raise ConfigError(f"the config must be a mapping (run_config, train_test_split, model), got {type(doc).__name__}")
    top = mapping(doc, "", ("run_config", "train_test_split", "model"), problems)

    run_config = mapping(top.get("run_config"), "run_config", ("version",), problems)
    version = run_config.get("version", "default")
    if not (isinstance(version, str) and VERSION_RE.fullmatch(version) and ".." not in version):
        problems.append(
            "run_config.version: must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit, "
            f"without '..', got {show(version)}"
        )

    split = mapping(
        top.get("train_test_split"), "train_test_split", ("test_size", "random_state", "shuffle", "stratify"), problems
    )
    test_size = split.get("test_size", 0.25)
    if test_size is None:
        test_size = 0.25
    test_rows = None
    if is_float(test_size) and 0.0 < test_size < 1.0:
        test_rows = math.ceil(test_size * IRIS_ROWS)
    elif is_int(test_size) and 1 <= test_size < IRIS_ROWS:
        test_rows = test_size
    else:
        problems.append(
            f"train_test_split.test_size: must be a fraction in (0.0, 1.0) or a row count from 1 to {IRIS_ROWS - 1}, "
            f"got {show(test_size)}"
        )
    split_seed = split.get("random_state")
    if not (split_seed is None or (is_int(split_seed) and 0 <= split_seed <= 2**32 - 1)):
        problems.append(f"train_test_split.random_state: must be an integer from 0 to 4294967295 or null, got {show(split_seed)}")
    shuffle = split.get("shuffle", True)
    if not isinstance(shuffle, bool):
        problems.append(f"train_test_split.shuffle: must be true or false, got {show(shuffle)}")
    stratify = split.get("stratify", False)
    if stratify is None:
        stratify = False
    if not isinstance(stratify, bool):
        problems.append(f"train_test_split.stratify: must be true, false or null, got {show(stratify)}")
    elif stratify and shuffle is False:
        problems.append("train_test_split.stratify: true requires shuffle: true")
    elif stratify and test_rows is not None and min(test_rows, IRIS_ROWS - test_rows) < IRIS_CLASSES:
        problems.append(f"train_test_split.test_size: stratify needs at least {IRIS_CLASSES} rows in each set")

    model_type, params = None, {}
    if "model" not in top or top.get("model") is None:
        problems.append(f"model: missing (it needs type: {' or '.join(MODEL_TYPES)})")
    else:
        model = mapping(top["model"], "model", ("type", "params"), problems)
        raw_type = model.get("type")
        model_type = MODEL_ALIASES.get(raw_type, raw_type) if isinstance(raw_type, str) else None
        if model_type not in MODEL_TYPES:
            model_type = None
            allowed = ", ".join(list(MODEL_TYPES) + list(MODEL_ALIASES))
            problems.append(f"model.type: must be one of {allowed}, got {show(raw_type)}")
        params = mapping(model.get("params"), "model.params", MODEL_PARAMS.get(model_type, ()), problems) if model_type else {}
        for name, value in params.items():
            if name in MODEL_PARAMS[model_type]:
                check_param(name, value, problems)

    if problems:
        raise ConfigError("; ".join(problems))
    return {
        "run_config": {"version": version},
        "train_test_split": {
            "test_size": test_size,
            "random_state": split_seed,
            "shuffle": shuffle,
            "stratify": stratify,
        },
        "model": {"type": model_type, "estimator": MODEL_TYPES[model_type], "params": dict(params)},
    }


def load_config(path):
    yaml = import_or_die("yaml", "PyYAML")
    try:
        size = os.path.getsize(path)
        if size > MAX_CONFIG_BYTES:
            die(EX_DATAERR, f"invalid config: it is {size} bytes, at most {MAX_CONFIG_BYTES}")
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        die(EX_NOINPUT, f"cannot read the config {path}: {e.strerror}")
    try:
        doc = yaml.safe_load(data)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        die(EX_DATAERR, f"invalid config: YAML syntax error at {where}{e.problem or e.context}")
    except yaml.YAMLError as e:
        die(EX_DATAERR, "invalid config: " + " ".join(str(e).split()))
    try:
        return resolve(doc)
    except ConfigError as e:
        die(EX_DATAERR, f"invalid config: {e}")


# --- the run -----------------------------------------------------------------


def train(cfg):
    import_or_die("sklearn", "scikit-learn")
    from sklearn import __version__ as sklearn_version
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split
    from sklearn.tree import DecisionTreeClassifier

    split = cfg["train_test_split"]
    X, y = load_iris(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X,
        y,
        test_size=split["test_size"],
        random_state=split["random_state"],
        shuffle=split["shuffle"],
        stratify=y if split["stratify"] else None,
    )
    cls = {"decision_tree": DecisionTreeClassifier, "random_forest": RandomForestClassifier}[cfg["model"]["type"]]
    model = cls(**cfg["model"]["params"])
    model.fit(X_train, y_train)
    accuracy = float(accuracy_score(y_test, model.predict(X_test)))
    metrics = {
        "model_type": cfg["model"]["type"],
        "estimator": cfg["model"]["estimator"],
        "version": cfg["run_config"]["version"],
        "accuracy": accuracy,
        "train_size": int(len(y_train)),
        "test_size": int(len(y_test)),
        "n_features": int(X.shape[1]),
        "n_classes": int(len(set(y.tolist()))),
        "sklearn_version": sklearn_version,
        "python_version": platform.python_version(),
    }
    return model, metrics


def write_outputs(out_dir, model, metrics, cfg):
    env = os.environ
    run = {
        "run_id": env.get("EDP_RUN_ID", ""),
        "config_bucket": env.get("EDP_CONFIG_BUCKET", ""),
        "config_key": env.get("EDP_CONFIG_KEY", ""),
        "config_version": env.get("EDP_CONFIG_VERSION", ""),
        "attempt": attempt(),
    }
    resolved = dict(cfg)
    resolved["model"] = dict(cfg["model"], effective_params=model.get_params(deep=False))
    try:
        with open(os.path.join(out_dir, "model.pkl"), "wb") as f:
            pickle.dump(model, f)
        with open(os.path.join(out_dir, "metrics.json"), "w") as f:
            json.dump(dict(metrics, **run), f, indent=2, sort_keys=True, default=str)
            f.write("\n")
        with open(os.path.join(out_dir, "config.resolved.json"), "w") as f:
            json.dump(resolved, f, indent=2, sort_keys=True, default=str)
            f.write("\n")
    except OSError as e:
        die(EX_IOERR, f"cannot write the outputs to {out_dir}: {e}")


def attempt():
    value = os.environ.get("EDP_ATTEMPT", "1")
    if not value.isdigit() or int(value) < 1:
        die(EX_USAGE, f"EDP_ATTEMPT must be a positive integer, got {value!r}")
    return int(value)


def main(argv):
    signal.signal(signal.SIGTERM, on_sigterm)
    if argv not in ([], ["--validate"]):
        die(EX_USAGE, f"unexpected arguments {' '.join(argv)!r} (usage: train.py [--validate])")
    validate = argv == ["--validate"]

    path = os.environ.get("EDP_CONFIG", "")
    if not path:
        die(EX_NOINPUT, "EDP_CONFIG is not set: it names the config file to read")
    if not os.path.isfile(path):
        die(EX_NOINPUT, f"config {path} does not exist or is not a file")
    cfg = load_config(path)
    model_type, version = cfg["model"]["type"], cfg["run_config"]["version"]
    if validate:
        print(f"{PROG}: {path}: ok ({model_type}, version {version})")
        return 0

    out_dir = os.environ.get("EDP_OUTPUT_DIR", "")
    if not out_dir:
        die(EX_USAGE, "EDP_OUTPUT_DIR is not set: it names the directory for the outputs")
    if not os.path.isdir(out_dir):
        die(EX_USAGE, f"EDP_OUTPUT_DIR {out_dir} is not a directory")
    print(
        f"{PROG}: run {os.environ.get('EDP_RUN_ID') or '(none)'}, attempt {attempt()}, "
        f"{model_type} (version {version}), deadline {os.environ.get('EDP_DEADLINE') or '(none)'}",
        flush=True,
    )
    model, metrics = train(cfg)
    write_outputs(out_dir, model, metrics, cfg)
    print(
        f"{PROG}: accuracy {metrics['accuracy']:.4f} on {metrics['test_size']} test rows "
        f"({metrics['train_size']} train); wrote model.pkl, metrics.json, config.resolved.json",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
