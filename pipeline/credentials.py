"""Credentials are never data: taken out of the command line before Hydra sees it.

A URI given as ``mlflow.tracking_uri=http://alice:SECRET@host:5000`` would
otherwise be a param of every run, in its ``config.yaml``, in Hydra's
``.hydra/*.yaml`` files, the job logs and MLflow's own error messages. So
every entry point calls ``take_from_argv`` first: the config gets the
redacted URI (``http://alice:***@host:5000``, which is what is logged,
saved and printed), and the process connects with the real one:

- ``http(s)://``: the user and password go to ``MLFLOW_TRACKING_USERNAME``
  and ``MLFLOW_TRACKING_PASSWORD``, MLflow's own way, and MLflow talks to
  the URI without them, so no URL it builds or prints holds the password;
- any other URI (a database, a token in the query string): the redacted
  form maps to the real one through ``FNN_SWEEP_TRACKING_URIS``.

``MLFLOW_TRACKING_URI``, the default of ``mlflow.tracking_uri`` when set, is
treated the same way (``take_from_environment``).

Worker processes inherit the environment. Standard library only:
``pipeline.__main__`` calls it before importing Hydra. The supported place
for credentials is the environment or ``~/.mlflow/credentials``.
"""

import json
import os
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
# Config keys whose values are URIs: MLflow's store, its artifacts, a search's Optuna storage.
URI_KEYS = ("mlflow.tracking_uri", "mlflow.artifact_location", "hydra.sweeper.storage", "sweep.study_storage")
SECRET_QUERY_KEYS = re.compile(r"token|secret|password|passwd|pwd|key|sig|signature|credential|auth", re.I)
_OVERRIDE = re.compile(r"^(?P<prefix>[+~]{0,2})(?P<key>[\w.]+)=(?P<value>.*)$", re.S)


def redact(uri: str) -> str:
    """``uri`` with its userinfo password and secret query values replaced by ``***``."""
    if not isinstance(uri, str) or "://" not in uri:
        return uri
    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:  # not a URI after all (a bad port): nothing to redact reliably
        return re.sub(r"(//[^/:@]*:)[^/@]*@", rf"\g<1>{MASK}@", uri)
    netloc = parts.netloc
    if password is not None:
        netloc = f"{parts.netloc.rsplit('@', 1)[0].split(':', 1)[0]}:{MASK}@{parts.netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(SECRET_QUERY_KEYS.search(k) for k, _ in pairs):
            query = urlencode([(k, MASK if SECRET_QUERY_KEYS.search(k) else v) for k, v in pairs], safe="*")
    if (netloc, query) == (parts.netloc, parts.query):
        return uri
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def take_from_argv(argv: list[str]) -> list[str]:
    """``argv`` (without the program) with every URI override's credentials taken out (see above)."""
    taken = json.loads(os.environ.get("FNN_SWEEP_TRACKING_URIS") or "{}")
    result = []
    for arg in argv:
        match = _OVERRIDE.match(arg)
        value = match["value"] if match else ""
        # Quoted, as Hydra needs a value with "=" in it ('s3://b/x?token=...'): the quotes stay, the
        # URI inside them is the one to redact, and the one the config will hold.
        quote = value[0] if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"" else ""
        uri = value[1:-1] if quote else value
        if match is None or match["key"] not in URI_KEYS or redact(uri) == uri:
            result.append(arg)
            continue
        shown = redact(uri)
        taken[shown] = _to_environment(uri) if match["key"] == "mlflow.tracking_uri" else uri
        result.append(f"{match['prefix']}{match['key']}={quote}{shown}{quote}")
    if taken:
        os.environ["FNN_SWEEP_TRACKING_URIS"] = json.dumps(taken)  # {redacted URI: URI to connect with}
    return result


def take_from_environment() -> None:
    """MLflow's own ``MLFLOW_TRACKING_URI``, which ``mlflow.tracking_uri`` defaults to, with its
    credentials taken out as from the command line: the variable keeps the redacted URI (what the
    config, and any process that inherits it, sees), and the real one is mapped as above."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if redact(uri) == uri:
        return
    taken = json.loads(os.environ.get("FNN_SWEEP_TRACKING_URIS") or "{}")
    taken[redact(uri)] = _to_environment(uri)
    os.environ["FNN_SWEEP_TRACKING_URIS"] = json.dumps(taken)
    os.environ["MLFLOW_TRACKING_URI"] = redact(uri)


def set_by_variable(uri: str) -> str:
    """A note for an error about ``uri`` when it is ``MLFLOW_TRACKING_URI``'s: that variable may be left
    set in the shell, unknown to the user, as the default of ``mlflow.tracking_uri``. Else ''."""
    value = os.environ.get("MLFLOW_TRACKING_URI")
    if value and uri in (value, redact(value), connect_uri(value)):
        return " (it is $MLFLOW_TRACKING_URI, the default of mlflow.tracking_uri)"
    return ""


def _to_environment(uri: str) -> str:
    """For an http(s) URI: its user and password into MLflow's variables; the URI without them."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or parts.password is None:
        return uri
    os.environ["MLFLOW_TRACKING_USERNAME"] = parts.username or ""
    os.environ["MLFLOW_TRACKING_PASSWORD"] = parts.password
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def connect_uri(uri: str) -> str:
    """The URI to connect with for a URI from the config (the same unless credentials were taken)."""
    if not uri or MASK not in uri:
        return uri
    return json.loads(os.environ.get("FNN_SWEEP_TRACKING_URIS") or "{}").get(uri, uri)
