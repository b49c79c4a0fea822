"""The workflow spec: nodes, templates, conditions, loops and fan-outs, validated once.

Every error is a :class:`idds.errors.SpecError` of one line that names the node (as its path,
e.g. ``learn.body.train``): a cycle, a dependency on a node that does not exist, an unknown
template parameter, an expression that does not parse or reads a name that is not there.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import graphlib
import shlex
import weakref
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Generic, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dag.expr import FUNCTIONS, Expression, ExpressionError, names_in
from idds.config import read_spec_file
from idds.errors import SpecError

_IDENT = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
#: Names every expression may read besides node outputs.
GLOBALS = frozenset({"params", "spec_dir"})
#: Names that only some nodes may read: a fan-out's item, a loop body's iteration.
LOCALS = frozenset({"item", "index", "iteration", "previous"})
RESERVED = GLOBALS | LOCALS | frozenset(FUNCTIONS)
#: Each node's dependencies, by ``id`` of its :class:`NodeSpec`.
Deps = dict[int, set[str]]
T = TypeVar("T")
KINDS = ("callable", "command", "template", "workflow", "if", "loop", "study", "toys")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FlowSpec(_Strict):
    """A sub-workflow: nodes, and the expression of its output (by default its only node's
    output, or a mapping of every node's output by name)."""

    nodes: list[NodeSpec] = Field(min_length=1)
    output: str | None = None


class LoopSpec(_Strict):
    """Repeat ``body`` until ``until`` holds (read after each iteration) or ``max`` runs.

    The body reads ``iteration`` (0, 1, ...) and ``previous`` (the last iteration's output;
    ``initial`` in the first).
    """

    body: FlowSpec
    until: str | None = None
    max: int = Field(ge=1, le=10_000)
    initial: Any = None


class NodeSpec(_Strict):
    """One node: exactly one of ``callable``, ``command``, ``template``, ``workflow``, ``if``,
    ``loop``, ``study`` or ``toys``, with what modifies it (``after``, ``foreach``, ...)."""

    name: str = Field(pattern=_IDENT)
    after: list[str] = Field(default_factory=list)
    callable: str | None = None
    command: list[str] | None = None
    container: dict[str, str] | None = None
    template: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    workflow: FlowSpec | None = None
    if_: str | None = Field(default=None, alias="if")
    then: FlowSpec | None = None
    else_: FlowSpec | None = Field(default=None, alias="else")
    loop: LoopSpec | None = None
    study: str | dict[str, Any] | None = None
    toys: str | dict[str, Any] | None = None
    foreach: list[Any] | str | None = None
    when: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    files: list[str] = Field(default_factory=list)
    resources: dict[str, Any] | None = None
    sites: list[str] | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=100)
    timeout: float | None = Field(default=None, gt=0)

    @field_validator("command", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return shlex.split(value) if isinstance(value, str) else value

    @field_validator("files")
    @classmethod
    def _relative(cls, value: list[str]) -> list[str]:
        for name in value:
            parts = PurePosixPath(name).parts
            if not name or PurePosixPath(name).is_absolute() or ".." in parts:
                raise ValueError(f"{name!r}: a declared file is a path inside the node's work dir")
        return value

    @field_validator("after", "sites", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind(self) -> NodeSpec:
        # Pydantic runs this twice per node of a recursive model: keep it cheap.
        v = self.__dict__
        given = [k for k, field in _KIND_FIELDS if v[field] is not None]
        if len(given) != 1:
            what = ", ".join(given) if given else "none"
            raise ValueError(f"give exactly one of {', '.join(KINDS)} (got {what})")
        if (v["then"] or v["else_"]) and v["if_"] is None:
            raise ValueError("'then' and 'else' go with 'if'")
        if v["if_"] is not None and v["then"] is None:
            raise ValueError("'if' needs 'then'")
        if v["params"] and v["template"] is None:
            raise ValueError("'params' goes with 'template'")
        if v["name"] in RESERVED:
            raise ValueError(f"{self.name!r} is a reserved name")
        return self

    @property
    def kind(self) -> str:
        return next(k for k, field in _KIND_FIELDS if getattr(self, field) is not None)


def _field(kind: str) -> str:
    return "if_" if kind == "if" else kind


_KIND_FIELDS = tuple((kind, _field(kind)) for kind in KINDS)


class TemplateSpec(_Strict):
    """A parameterised sub-workflow; ``params`` maps each parameter to its default (``null``:
    required). Its nodes read ``params``, not the nodes of the workflow that uses it."""

    params: dict[str, Any] = Field(default_factory=dict)
    nodes: list[NodeSpec] = Field(min_length=1)
    output: str | None = None

    @field_validator("params", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        return dict.fromkeys(value) if isinstance(value, list) else value

    @property
    def flow(self) -> FlowSpec:
        return FlowSpec.model_construct(nodes=self.nodes, output=self.output)  # validated


class Defaults(_Strict):
    resources: dict[str, Any] = Field(default_factory=lambda: {"cpus": 1})
    sites: list[str] | None = None
    max_attempts: int = Field(default=3, ge=1, le=100)
    timeout: float | None = Field(default=None, gt=0)


class WorkflowSpec(_Strict):
    """A whole workflow. ``params`` are its parameters (``--set key=value`` overrides them)."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    templates: dict[str, TemplateSpec] = Field(default_factory=dict)
    nodes: list[NodeSpec] = Field(min_length=1)
    output: str | None = None
    defaults: Defaults = Field(default_factory=Defaults)
    parallel: int = Field(default=64, ge=1, le=100_000)
    pythonpath: list[str] = Field(default_factory=list)

    @property
    def flow(self) -> FlowSpec:
        return FlowSpec.model_construct(nodes=self.nodes, output=self.output)  # validated

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "workflow") -> WorkflowSpec:
        """Validate a mapping (from YAML, JSON or Python), structure and references.

        Raises:
            SpecError: one line naming the node or field that is wrong.
        """
        if not isinstance(data, dict):
            raise SpecError(f"{source}: a workflow must be a mapping, got {type(data).__name__}")
        with gc_paused():
            try:
                spec = cls.model_validate(data)
            except ValidationError as exc:
                raise SpecError(f"{source}: {_first_error(exc)}") from None
            try:
                _FOUND.remember(spec, check(spec))
            except SpecError as exc:
                raise SpecError(f"{source}: {exc}") from None
        return spec

    def dependencies(self) -> Deps:
        """Each node's dependencies, by ``id`` of its :class:`NodeSpec` (of every flow, nested
        and in templates): the siblings it names in ``after`` or reads.

        Raises:
            SpecError: the spec does not check (see :func:`check`).
        """
        found = _FOUND.get(self)
        if found is None:
            found = _FOUND.remember(self, check(self))
        return found

    def to_mapping(self) -> dict[str, Any]:
        """The spec as JSON-ready data (what is recorded). Made once (the spec is frozen):
        at 100,000 nodes that takes a second; each call returns a copy of the top level."""
        mapping = _MAPPINGS.get(self)
        if mapping is None:
            with gc_paused():
                mapping = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
            _MAPPINGS.remember(self, mapping)
        return dict(mapping)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Hold the cyclic garbage collector while a large spec is built: its objects all stay
    alive, and at 100,000 nodes the collector's passes over them would take a third of the
    time. Reference counting still frees what is dropped meanwhile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _Kept(Generic[T]):
    """What was worked out once for a spec, kept while the spec lives (a spec is frozen), by
    its ``id`` (hashing a spec of 100,000 nodes would cost as much as working it out)."""

    def __init__(self) -> None:
        self._by_id: dict[int, T] = {}

    def get(self, spec: WorkflowSpec) -> T | None:
        return self._by_id.get(id(spec))

    def remember(self, spec: WorkflowSpec, value: T) -> T:
        if id(spec) not in self._by_id:
            weakref.finalize(spec, self._by_id.pop, id(spec), None)
        self._by_id[id(spec)] = value
        return value


#: The dependencies that the check of a spec found, so that an engine does not find them
#: again (at 100,000 nodes that takes seconds).
_FOUND: _Kept[Deps] = _Kept()
#: The spec as recorded (:meth:`WorkflowSpec.to_mapping`).
_MAPPINGS: _Kept[dict[str, Any]] = _Kept()


FlowSpec.model_rebuild()
LoopSpec.model_rebuild()


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def load_spec_file(path: str | Path, overrides: dict[str, Any] | None = None) -> WorkflowSpec:
    """Read and validate a workflow file (YAML or JSON); ``overrides`` replace its params.

    Relative ``pythonpath`` entries are made absolute from the file's directory, which
    expressions read as ``spec_dir``.

    Raises:
        SpecError: the file is missing, does not parse or does not validate, or an override
            names a parameter the workflow does not have.
    """
    path = Path(path)
    data = read_spec_file(path)
    if isinstance(data, dict):
        for key, kind in (("params", dict), ("pythonpath", list)):
            if not isinstance(data.get(key, kind()), kind):
                raise SpecError(f"{path}: {key}: must be a {'mapping' if kind is dict else 'list'}")
        base = path.resolve().parent
        data = {**data, "params": {**data.get("params", {}), "spec_dir": str(base)}}
        data["pythonpath"] = [str(base / str(p)) for p in data.get("pythonpath", [])]
        data = with_params(data, overrides or {}, source=str(path))
    return WorkflowSpec.from_mapping(data, source=str(path))


def with_params(data: dict[str, Any], overrides: dict[str, Any], *, source: str) -> dict[str, Any]:
    """``data`` with its params replaced by ``overrides`` (which must name existing ones)."""
    params = dict(data.get("params") or {})
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        known = ", ".join(sorted(set(params) - {"spec_dir"})) or "none"
        raise SpecError(f"{source}: unknown parameter(s) {', '.join(unknown)} (known: {known})")
    return {**data, "params": {**params, **overrides}}


# --- references -----------------------------------------------------------------------


def check(spec: WorkflowSpec) -> Deps:
    """Check names, dependencies, cycles, templates and expressions of the whole workflow.

    Returns:
        Each node's dependencies (see :meth:`WorkflowSpec.dependencies`).

    Raises:
        SpecError: naming the node.
    """
    found: Deps = {}
    for name, template in spec.templates.items():
        free = _check_flow(spec, template.flow, f"template {name}", outer=set(), local=set(),
                           found=found)  # fmt: skip
        if free:
            raise SpecError(f"template {name}: reads {_names(free)}, which it cannot see")
    _check_flow(spec, spec.flow, "", outer=set(), local=set(), found=found)
    return found


def _check_flow(
    spec: WorkflowSpec, flow: FlowSpec, where: str, *, outer: set[str], local: set[str],
    found: Deps,
) -> set[str]:  # fmt: skip
    """Check ``flow`` (its nodes' dependencies go into ``found``); return the names it reads
    from enclosing flows."""
    names = [n.name for n in flow.nodes]
    twice = sorted(n for n, count in collections.Counter(names).items() if count > 1)
    if twice:
        raise SpecError(f"{where or 'workflow'}: node name(s) {_names(twice)} used twice")
    siblings = set(names)
    visible = outer | siblings  # once per flow: per node it would cost the flow's size each
    deps: dict[str, set[str]] = {}
    reads_outside: set[str] = set()
    for node in flow.nodes:
        path = f"{where}.{node.name}" if where else node.name
        missing = [a for a in node.after if a not in siblings]
        if missing:
            raise SpecError(f"node {path}: depends on {_names(missing)}, which does not exist")
        reads = node_reads(spec, node, path, visible, local, found)
        unknown = reads - siblings - outer
        if unknown:
            raise SpecError(f"node {path}: reads {_names(unknown)}, which is not an output here")
        deps[node.name] = found[id(node)] = (set(node.after) | reads) & siblings
        reads_outside |= reads - siblings
    if flow.output:
        reads = _expression_reads(flow.output, f"{where or 'workflow'} output", local)
        unknown = reads - siblings - outer
        if unknown:
            raise SpecError(f"{where or 'workflow'} output: reads {_names(unknown)}, not here")
    _check_acyclic(deps, where)
    return reads_outside


def node_reads(
    spec: WorkflowSpec, node: NodeSpec, path: str, visible: set[str], local: set[str],
    found: Deps | None = None,
) -> set[str]:  # fmt: skip
    """The node names a node reads (itself and through its sub-workflows, whose nodes'
    dependencies go into ``found``)."""
    if _reads_nothing(node):
        return set()
    here = local | ({"item", "index"} if node.foreach is not None else set())
    texts = {"when": node.when, "if": node.if_}
    reads = set().union(
        *(_expression_reads(t, f"node {path}", here, field) for field, t in texts.items() if t)
    )
    if isinstance(node.foreach, str):
        reads |= _expression_reads(node.foreach, f"node {path} foreach", local)
    fields = {"args": node.args, "command": node.command or [], "params": node.params,
              "study": node.study, "toys": node.toys}  # fmt: skip
    for field, value in fields.items():
        if value:  # most nodes set one or two of these
            reads |= _template_reads(value, f"node {path}", here, field)
    if isinstance(node.foreach, list):
        reads |= _template_reads(node.foreach, f"node {path}", local)
    if node.template is not None:
        _check_template_use(spec, node, path)
    for label, flow, body_local in _sub_flows(node, here):
        reads |= _check_flow(spec, flow, f"{path}.{label}", outer=visible, local=body_local,
                             found={} if found is None else found)  # fmt: skip
    if node.loop:
        reads |= _template_reads(node.loop.initial, f"node {path} initial", here)
    if node.loop and node.loop.until:
        body = {n.name for n in node.loop.body.nodes}
        until = _expression_reads(node.loop.until, f"node {path} until", here | LOCALS)
        reads |= until - body
    return reads


#: The fields of a node that may read other nodes (expressions, templated values, parts).
_READING = ("when", "if_", "foreach", "args", "command", "params", "study", "toys", "template",
            "then", "else_", "workflow", "loop")  # fmt: skip


def _reads_nothing(node: NodeSpec) -> bool:
    """True for a node that sets none of the fields that read (most nodes of a large
    workflow: a callable and its ``after``): it needs no walk of its values."""
    values = node.__dict__
    return all(values[f] is None or values[f] == {} for f in _READING)


def _sub_flows(node: NodeSpec, local: set[str]) -> list[tuple[str, FlowSpec, set[str]]]:
    flows = [("then", node.then, local), ("else", node.else_, local)]
    flows += [("workflow", node.workflow, local)]
    if node.loop:
        flows.append(("body", node.loop.body, local | {"iteration", "previous"}))
    return [(label, f, names) for label, f, names in flows if f is not None]


def _check_template_use(spec: WorkflowSpec, node: NodeSpec, path: str) -> None:
    template = spec.templates.get(str(node.template))
    if template is None:
        known = ", ".join(sorted(spec.templates)) or "none"
        raise SpecError(f"node {path}: no template {node.template!r} (templates: {known})")
    unknown = sorted(set(node.params) - set(template.params))
    if unknown:
        raise SpecError(
            f"node {path}: template {node.template} has no parameter(s) {_names(unknown)}"
            f" (it has: {_names(template.params) or 'none'})"
        )
    missing = sorted(k for k, v in template.params.items() if v is None and k not in node.params)
    if missing:
        raise SpecError(f"node {path}: template {node.template} needs {_names(missing)}")


def _expression_reads(text: str, where: str, local: set[str], field: str = "") -> set[str]:
    try:
        names = set(Expression(text).names)
    except ExpressionError as exc:
        raise SpecError(f"{where}: {exc}{f' (in {field})' if field else ''}") from None
    return _node_names(names, where, local)


def _template_reads(value: Any, where: str, local: set[str], field: str = "") -> set[str]:
    try:
        names = names_in(value)
    except ExpressionError as exc:
        raise SpecError(f"{where}: {exc}{f' (in {field})' if field else ''}") from None
    return _node_names(names, where, local)


def _node_names(names: set[str], where: str, local: set[str]) -> set[str]:
    """``names`` less the parameters an expression may read; refuses a local read elsewhere."""
    misplaced = (names & LOCALS) - local
    if misplaced:
        raise SpecError(f"{where}: {_names(misplaced)} can only be read in a fan-out or a loop")
    return names - GLOBALS - LOCALS


def _check_acyclic(deps: dict[str, set[str]], where: str) -> None:
    if _sorts(deps):
        return
    try:
        graphlib.TopologicalSorter(deps).prepare()  # finds the cycle to name
    except graphlib.CycleError as exc:
        cycle = " -> ".join(exc.args[1])
        raise SpecError(f"{where or 'workflow'}: a cycle: {cycle}") from None


def _sorts(deps: dict[str, set[str]]) -> bool:
    """True if ``deps`` (node -> the nodes it depends on) has no cycle (Kahn's algorithm:
    several times quicker than graphlib's on a large flow)."""
    waiting = {name: len(on) for name, on in deps.items()}
    dependants: dict[str, list[str]] = {}
    for name, on in deps.items():
        for dep in on:
            dependants.setdefault(dep, []).append(name)
    free = [name for name, n in waiting.items() if n == 0]
    done = 0
    while free:
        name = free.pop()
        done += 1
        for dependant in dependants.get(name, ()):
            waiting[dependant] -= 1
            if waiting[dependant] == 0:
                free.append(dependant)
    return done == len(waiting)


def _names(names: Any) -> str:
    return ", ".join(repr(n) for n in sorted(names))
