"""The package's layers import only downwards, methods stay in their own packages, and the shared
entry points know no method: every import of dynnet_d2 (module level or inside functions) is
walked, and the code (not the comments or docstrings) of the shared entry points is searched
for method names."""
import ast
import io
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dynnet_d2"
# Lower rank = lower layer; a module may import its own rank or lower ones.
RANKS = {"utils": 0, "config": 1, "compat": 1, "data": 2, "evaluation": 3, "modeling": 4,
         "engine": 5, "methods": 6, "experiments": 7, "collect_env": 8}
METHODS = sorted(p.name for p in (PACKAGE / "methods").iterdir()
                 if (p / "__init__.py").is_file())
# Names a shared entry point must not use in its code.
METHOD_WORDS = ("tfa", "fsrw", "shapeprop", "deepmoe", "skipnet", "idk", "cascade", "tafe")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path):
    """Every dynnet_d2 module ``path`` imports, relative imports resolved."""
    tree = ast.parse(path.read_text())
    package = (module_name(path) if path.name == "__init__.py"
               else module_name(path).rsplit(".", 1)[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("dynnet_d2"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("dynnet_d2"):
                names = [a.name for a in node.names]
                yield from ([f"{target}.{n}" for n in names] if target in ("dynnet_d2",
                            "dynnet_d2.methods") else [target])


def part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def method_of(module: str):
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "methods" else None


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_downwards_and_methods_stay_apart(path):
    importer = module_name(path)
    if importer in ("dynnet_d2", "dynnet_d2.methods"):
        return  # the package's and the methods' registration imports
    for target in imported_modules(path):
        source, destination = part(importer), part(target)
        if destination not in RANKS:
            continue  # dynnet_d2 itself (e.g. `from dynnet_d2 import ...` in tools only)
        assert RANKS[destination] <= RANKS[source], (
            f"{importer} ({source}) imports {target} ({destination}), a higher layer")
        if method_of(target) is not None:
            assert method_of(importer) == method_of(target), (
                f"{importer} imports the method {method_of(target)!r} by name ({target}); "
                f"declare what it plugs into in a shared layer instead")


def code_words(path: Path):
    """Lower-case names and string contents of ``path``'s code: comments and docstrings (string
    statements) left out."""
    tree = ast.parse(path.read_text())
    docstrings = {(n.value.lineno, n.value.col_offset) for n in ast.walk(tree)
                  if isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant)
                  and isinstance(n.value.value, str)}
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type == tokenize.NAME or (token.type == tokenize.STRING
                                           and token.start not in docstrings):
            yield token.string.lower()


# tools/train_net.py and every shared part: engine/, ImageClassifier, and the rest of the package
# outside methods/.
SHARED_CODE = [ROOT / "tools" / "train_net.py"] + [
    p for p in MODULES if "methods" not in p.relative_to(PACKAGE).parts[:1]
    and p != PACKAGE / "__init__.py"]


@pytest.mark.parametrize("path", SHARED_CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_shared_code_mentions_no_method(path):
    mentions = sorted({w for word in code_words(path) for w in METHOD_WORDS
                       if w in word.replace("_", " ").replace(".", " ").replace("/", " ").split()})
    assert not mentions, f"{path.name} names method(s) {mentions} in its code"


def test_the_walk_sees_upward_and_cross_method_imports(tmp_path):
    """The checks above can fail: a shared module importing a method is seen."""
    engine = PACKAGE / "engine" / "trainer.py"
    assert "dynnet_d2.modeling.meta_arch" in set(imported_modules(engine))
    assert RANKS[part("dynnet_d2.methods.skipnet.gated")] > RANKS[part(module_name(engine))]
    assert METHODS == ["idk", "shapeprop", "skipnet", "tfa"] or set(METHODS) >= {
        "idk", "shapeprop", "skipnet", "tfa"}
    assert list(code_words(ROOT / "tools" / "benchmark_skipnet.py")).count("skipnet") > 0
