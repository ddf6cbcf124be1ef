"""JSON schemas as the grammars that constrain generation: compact JSON, with no free whitespace.

Given a `json_schema`, openvino-genai has xgrammar allow any whitespace between JSON tokens, and a model
may spend its whole budget on it (a random-weight one does). As llama.cpp's JSON grammars bound it, the
router converts the schema itself with xgrammar's compact form: whitespace only inside the separators
", " and ": ", never between tokens; openvino-genai takes the result as an EBNF grammar.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

#: The item and key separators of the compact form, as Python's `json.dumps` writes them.
SEPARATORS = (", ", ": ")


@functools.cache
def bindings() -> ModuleType | None:
    """xgrammar's native module alone (the package's `__init__` imports torch: about 600 MB, 2 s); None without xgrammar."""
    spec = importlib.util.find_spec("xgrammar")
    folders = spec.submodule_search_locations or [] if spec is not None else []
    path = next((p for folder in folders for p in Path(folder).glob("xgrammar_bindings*.so")), None)
    if path is None:
        return None
    loader = importlib.machinery.ExtensionFileLoader("xgrammar_bindings", str(path))
    native = importlib.util.spec_from_file_location("xgrammar_bindings", path, loader=loader)
    assert native is not None  # never None when a loader is given
    module = importlib.util.module_from_spec(native)
    loader.exec_module(module)
    return module


def compact_grammar(schema: str) -> str | None:
    """The EBNF grammar of compact JSON text matching `schema` (JSON text), in strict mode as openvino-genai converts.

    None without xgrammar (the `structured` extra): openvino-genai then converts the schema itself, any
    whitespace allowed. xgrammar's `RuntimeError` or `ValueError` for a schema it cannot convert passes through.
    """
    native = bindings()
    if native is None:
        return None
    grammar = native.Grammar.from_json_schema(schema, False, None, SEPARATORS, True, None, False)
    return str(grammar.to_string())
