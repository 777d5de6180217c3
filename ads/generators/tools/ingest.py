"""Raw parsing of tool files: ToolBench tool and query files, response examples, NESTFUL
RapidAPI specs and OpenAI function-calling schemas, each into `Endpoint` records.

Parsing only: names are kept as written and nothing is deduplicated here (that is the
registry's job). The format of each file is recognised from its content, not its name. A file
that is broken is one `ToolFileError` naming the file and the field (`api_list[3].name`), raised
before anything is generated, because a half-read tool set silently changes every later
sample.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from models.errors import ConfigError
from ads.generators.tools.schema import Endpoint, Example, Param, norm_type, slug


class ToolFileError(ConfigError):
    """A tool file that cannot be read; the message names the file and the field."""


@dataclass
class IngestResult:
    endpoints: list[Endpoint] = field(default_factory=list)
    examples: list[Example] = field(default_factory=list)
    # tool slug -> {endpoint slug -> output schema}, from response_examples files
    response_schemas: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)  # path -> detected format
    unknown_types: int = 0

    def extend(self, other: "IngestResult") -> None:
        self.endpoints += other.endpoints
        self.examples += other.examples
        for t, eps in other.response_schemas.items():
            self.response_schemas.setdefault(t, {}).update(eps)
        self.files.update(other.files)
        self.unknown_types += other.unknown_types


def _err(path: Path, where: str, msg: str) -> ToolFileError:
    return ToolFileError(f"{path}: field '{where}': {msg}")


def _need(obj: Any, key: str, path: Path, where: str, kind: type | tuple[type, ...] = str) -> Any:
    if not isinstance(obj, dict):
        raise _err(path, where, f"expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise _err(path, f"{where}.{key}" if where else key, "missing")
    v = obj[key]
    if not isinstance(v, kind):
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise _err(path, f"{where}.{key}" if where else key, f"expected {want}, got {type(v).__name__}")
    return v


# --- output schemas from the three shapes they come in -------------------------------------
def template_to_schema(t: Any) -> dict[str, Any]:
    """A ToolBench `template_response`/response-example schema, or an example value, as JSON schema."""
    if isinstance(t, dict):
        props = {str(k): template_to_schema(v) for k, v in t.items() if k != "_list_length"}
        return {"type": "object", "properties": props}
    if isinstance(t, list):
        return {"type": "array", "items": template_to_schema(t[0]) if t else {"type": "string"}}
    if isinstance(t, bool):
        return {"type": "boolean"}
    if isinstance(t, int):
        return {"type": "integer"}
    if isinstance(t, float):
        return {"type": "number"}
    s = str(t).strip().lower()
    if s in ("int", "integer"):
        return {"type": "integer"}
    if s in ("float", "number"):
        return {"type": "number"}
    if s in ("bool", "boolean"):
        return {"type": "boolean"}
    if s.startswith(("list", "empty list")):
        return {"type": "array", "items": {"type": "string"}}
    return {"type": "string"}


def spec_to_schema(props: dict[str, Any]) -> dict[str, Any]:
    """NESTFUL `output_parameters` ({name: {type, properties, items}}) as an object schema."""
    def conv(v: Any) -> dict[str, Any]:
        if not isinstance(v, dict):
            return {"type": "string"}
        t, _ = norm_type(v.get("type"))
        if t == "object" and isinstance(v.get("properties"), dict) and v["properties"]:
            return {"type": "object", "properties": {str(k): conv(x) for k, x in v["properties"].items()}}
        if t == "array":
            return {"type": "array", "items": conv(v.get("items")) if isinstance(v.get("items"), dict)
                    else {"type": "string"}}
        return {"type": t if t != "object" else "string"}
    return {"type": "object", "properties": {str(k): conv(v) for k, v in props.items()}}


# --- parameters ----------------------------------------------------------------------------
def _toolbench_params(api: dict[str, Any], path: Path, where: str, res: IngestResult) -> list[Param]:
    params: list[Param] = []
    for key, required in (("required_parameters", True), ("optional_parameters", False)):
        raw = api.get(key, [])
        if raw is None:
            raw = []
        if not isinstance(raw, list):
            raise _err(path, f"{where}.{key}", f"expected a list, got {type(raw).__name__}")
        for j, p in enumerate(raw):
            pw = f"{where}.{key}[{j}]"
            name = _need(p, "name", path, pw)
            t, known = norm_type(p.get("type"))
            res.unknown_types += 0 if known else 1
            default = p.get("default")
            params.append(Param(name=name, type=t, description=str(p.get("description") or "").strip(),
                                required=required, default=None if default in ("", None) else default,
                                enum=[x for x in p.get("enum") or [] if isinstance(x, (str, int, float))]))
    return params


def _json_schema_params(schema: Any, path: Path, where: str, res: IngestResult,
                        required_flags: bool = False) -> list[Param]:
    """OpenAI `parameters` (JSON schema object) or NESTFUL `query_parameters` ({name: {..., required}})."""
    if schema in (None, {}):
        return []
    if not isinstance(schema, dict):
        raise _err(path, where, f"expected an object, got {type(schema).__name__}")
    props = schema if required_flags else schema.get("properties", {})
    if not isinstance(props, dict):
        raise _err(path, f"{where}.properties", f"expected an object, got {type(props).__name__}")
    req = set() if required_flags else set(schema.get("required") or [])
    params = []
    for name, p in props.items():
        if not isinstance(p, dict):
            raise _err(path, f"{where}.{name}", f"expected an object, got {type(p).__name__}")
        t, known = norm_type(p.get("type", "string"))
        res.unknown_types += 0 if known else 1
        is_req = bool(p.get("required")) if required_flags else name in req
        params.append(Param(name=str(name), type=t, description=str(p.get("description") or "").strip(),
                            required=is_req, default=p.get("default"),
                            enum=[x for x in p.get("enum") or [] if isinstance(x, (str, int, float))]))
    return params


# --- the formats -----------------------------------------------------------------------------
def parse_query_file(data: list[Any], path: Path) -> IngestResult:
    res = IngestResult()
    for i, q in enumerate(data):
        apis = _need(q, "api_list", path, f"[{i}]", list)
        ids = []
        for k, api in enumerate(apis):
            w = f"[{i}].api_list[{k}]"
            ep = Endpoint(tool=_need(api, "tool_name", path, w), name=_need(api, "api_name", path, w),
                          category=str(api.get("category_name") or "Uncategorized"),
                          description=str(api.get("api_description") or "").strip(),
                          method=str(api.get("method") or "GET"), params=_toolbench_params(api, path, w, res),
                          source=str(path))
            if isinstance(api.get("template_response"), (dict, list)):
                ep.output_schema, ep.output_source = template_to_schema(api["template_response"]), "template"
            res.endpoints.append(ep)
            ids.append(ep.id)
        if isinstance(q.get("query"), str) and q["query"].strip():
            rel = q.get("relevant APIs") or []
            rel_ids = [f"{slug(t)}::{slug(a)}" for t, a in rel if isinstance(t, str) and isinstance(a, str)] \
                if all(isinstance(r, list) and len(r) == 2 for r in rel) else []
            cat = str(apis[0].get("category_name") or "Uncategorized") if apis else "Uncategorized"
            res.examples.append(Example(query=q["query"].strip(), endpoint_ids=rel_ids or ids, category=cat,
                                        source=str(path)))
    return res


def parse_tool_file(data: dict[str, Any], path: Path) -> IngestResult:
    res = IngestResult()
    tool = data.get("tool_name") or data.get("name") or data.get("standardized_name")
    if not isinstance(tool, str) or not tool.strip():
        raise _err(path, "tool_name", "missing (a ToolBench tool file needs tool_name or name)")
    category = str(data.get("category_name") or data.get("category") or path.parent.name or "Uncategorized")
    for k, api in enumerate(_need(data, "api_list", path, "", list)):
        w = f"api_list[{k}]"
        ep = Endpoint(tool=tool, name=_need(api, "name", path, w), category=category,
                      description=str(api.get("description") or "").strip(), method=str(api.get("method") or "GET"),
                      params=_toolbench_params(api, path, w, res), source=str(path))
        example = api.get("test_endpoint")
        if isinstance(api.get("template_response"), (dict, list)):
            ep.output_schema, ep.output_source = template_to_schema(api["template_response"]), "template"
        elif isinstance(example, dict) and example and "message" not in example:
            ep.output_schema, ep.output_source = template_to_schema(example), "response_example"
        res.endpoints.append(ep)
    return res


def parse_response_examples(data: dict[str, Any], path: Path) -> IngestResult:
    res = IngestResult()
    tool = slug(path.stem)
    for k, api in enumerate(_need(data, "api_list", path, "", list)):
        name = _need(api, "name", path, f"api_list[{k}]")
        res.response_schemas.setdefault(tool, {})[slug(name)] = template_to_schema(api.get("schema"))
    return res


def parse_nestful(data: list[Any], path: Path) -> IngestResult:
    res = IngestResult()
    for i, spec in enumerate(data):
        w = f"[{i}]"
        name = _need(spec, "name", path, w)
        host = str(spec.get("host") or "")
        tool = host.split(".p.rapidapi.com")[0] if host else name
        ep = Endpoint(tool=tool, name=name, category=str(spec.get("category") or tool),
                      description=str(spec.get("description") or "").strip(), method=str(spec.get("method") or "GET"),
                      params=_json_schema_params(spec.get("query_parameters"), path, f"{w}.query_parameters", res,
                                                 required_flags=True), source=str(path))
        outp = spec.get("output_parameters")
        if isinstance(outp, dict) and outp:
            ep.output_schema, ep.output_source = spec_to_schema(outp), "spec"
        res.endpoints.append(ep)
    return res


def parse_openai(data: Any, path: Path) -> IngestResult:
    """OpenAI function-calling schemas: a list of {type: function, function: {...}} or bare
    {name, description, parameters}, or an object holding such a list under `tools`/`functions`.
    Every function in one file is an endpoint of one tool named after the file (or `x-tool`)."""
    res = IngestResult()
    if isinstance(data, dict):
        key = "tools" if "tools" in data else "functions" if "functions" in data else None
        if key is None:
            raise _err(path, "tools", "missing (an OpenAI schema file holds a list, or an object with tools/functions)")
        data = data[key]
        if not isinstance(data, list):
            raise _err(path, key, f"expected a list, got {type(data).__name__}")
    for i, entry in enumerate(data):
        w = f"[{i}]"
        fn = entry.get("function") if isinstance(entry, dict) and entry.get("type") == "function" else entry
        if entry is not fn:
            w += ".function"
        name = _need(fn, "name", path, w)
        tool = str(fn.get("x-tool") or path.stem)
        ep = Endpoint(tool=tool, name=name, category=str(fn.get("x-category") or "OpenAI functions"),
                      description=str(fn.get("description") or "").strip(), method="CALL",
                      params=_json_schema_params(fn.get("parameters"), path, f"{w}.parameters", res), source=str(path))
        returns = fn.get("x-returns") or fn.get("returns")
        if isinstance(returns, dict) and returns:
            ep.output_schema, ep.output_source = returns, "spec"
        res.endpoints.append(ep)
    return res


def detect_format(data: Any) -> str | None:
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        first = data[0]
        if "api_list" in first:
            return "toolbench_query"
        if "query_parameters" in first:
            return "nestful"
        if first.get("type") == "function" or ("name" in first and "parameters" in first):
            return "openai"
    if isinstance(data, dict):
        if isinstance(data.get("api_list"), list):
            apis = data["api_list"]
            named = any(k in data for k in ("tool_name", "name", "standardized_name"))
            if not named and all(isinstance(a, dict) and "schema" in a and "required_parameters" not in a
                                 and "description" not in a for a in apis):
                return "response_examples"
            return "toolbench_tool"
        if isinstance(data.get("tools"), list) or isinstance(data.get("functions"), list):
            return "openai"
    return None


PARSERS = {"toolbench_query": parse_query_file, "toolbench_tool": parse_tool_file,
           "response_examples": parse_response_examples, "nestful": parse_nestful, "openai": parse_openai}


def load_file(path: str | Path, fmt: str | None = None) -> IngestResult:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ToolFileError(f"{path}: cannot read: {e}") from None
    if not text.strip():
        raise ToolFileError(f"{path}: empty file (expected ToolBench, NESTFUL or OpenAI tool JSON)")
    try:
        from models.structured import loads_bounded  # deep nesting: a JSON error, not a RecursionError

        data = loads_bounded(text)
    except json.JSONDecodeError as e:
        raise ToolFileError(f"{path}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    fmt = fmt or detect_format(data)
    if fmt not in PARSERS:
        keys = sorted(data)[:6] if isinstance(data, dict) else f"a {type(data).__name__}"
        raise ToolFileError(f"{path}: unrecognised tool format (top level: {keys}); expected a ToolBench tool file "
                            f"(tool_name, api_list), a query file (list with api_list), a NESTFUL spec list "
                            f"(query_parameters) or OpenAI function schemas")
    res = PARSERS[fmt](data, path)
    res.files[str(path)] = fmt
    return res


def iter_json_files(paths: Iterable[str | Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        p = Path(p).expanduser()
        if p.is_dir():
            out += sorted(x for x in p.rglob("*.json") if x.is_file())
        elif p.is_file():
            out.append(p)
        else:
            raise ToolFileError(f"{p}: tool source not found (give a file or a folder of JSON files)")
    return out


def load_paths(paths: Iterable[str | Path]) -> IngestResult:
    res = IngestResult()
    for f in iter_json_files(paths):
        res.extend(load_file(f))
    return res
