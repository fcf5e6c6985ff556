"""Rubric formulas such as ``(SR + CR) / Q``: parsed with ``ast`` and evaluated without ``eval``.

Rubric authors write summary metrics as arithmetic over names (code counts, group counts, session
item scores). Only numbers, names, + - * /, parentheses and the functions ``min``, ``max``,
``clamp(value, low, high)`` are allowed. A division by zero (no questions asked yet) gives
``None``: the metric is "not applicable", which is different from zero.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from functools import lru_cache

from simulator.errors import InvalidInput

FUNCTIONS = {"min", "max", "clamp"}
MAX_FORMULA_CHARS = 500
"""Formulas are one line of arithmetic; a longer one is a mistake (and could exhaust the parser)."""

_ALLOWED = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Load, ast.Call,
            ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.UAdd)


class FormulaError(InvalidInput):
    pass


@lru_cache(maxsize=512)
def _parse(formula: str) -> ast.expr:
    if len(formula) > MAX_FORMULA_CHARS:
        raise FormulaError(f"formula is longer than {MAX_FORMULA_CHARS} characters")
    try:
        tree = ast.parse(formula.strip(), mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"formula {formula!r} is not valid arithmetic: {exc.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise FormulaError(f"formula {formula!r} is too deeply nested") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise FormulaError(f"formula {formula!r}: {type(node).__name__} is not allowed "
                               "(only numbers, names, + - * / and min, max, clamp)")
        if isinstance(node, ast.Call):
            func = node.func
            if not isinstance(func, ast.Name) or func.id not in FUNCTIONS or node.keywords:
                raise FormulaError(f"formula {formula!r}: only {sorted(FUNCTIONS)} may be called")
            if func.id == "clamp" and len(node.args) != 3:
                raise FormulaError(f"formula {formula!r}: clamp takes (value, low, high)")
            if not node.args:
                raise FormulaError(f"formula {formula!r}: {func.id}() needs arguments")
        if isinstance(node, ast.Constant) and (
            isinstance(node.value, bool) or not isinstance(node.value, int | float)
        ):
            raise FormulaError(f"formula {formula!r}: only numbers are allowed as constants")
    return tree.body


def check(formula: str) -> None:
    """Raise FormulaError if ``formula`` is not an allowed expression."""
    _parse(formula)


def formula_names(formula: str) -> set[str]:
    """The variable names a formula uses (function names excluded)."""
    body = _parse(formula)
    calls = {id(n.func) for n in ast.walk(body) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(body) if isinstance(n, ast.Name) and id(n) not in calls}


def evaluate(formula: str, values: Mapping[str, float | None]) -> float | None:
    """Evaluate with ``values``; a missing name counts 0; a None value or x/0 gives None."""

    def ev(node: ast.expr) -> float | None:
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, int | float)
            return float(node.value)
        if isinstance(node, ast.Name):
            v = values.get(node.id, 0.0)
            return None if v is None else float(v)
        if isinstance(node, ast.UnaryOp):
            x = ev(node.operand)
            return None if x is None else (-x if isinstance(node.op, ast.USub) else x)
        if isinstance(node, ast.BinOp):
            a, b = ev(node.left), ev(node.right)
            if a is None or b is None:
                return None
            if isinstance(node.op, ast.Add):
                return a + b
            if isinstance(node.op, ast.Sub):
                return a - b
            if isinstance(node.op, ast.Mult):
                return a * b
            return None if b == 0 else a / b
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            args = [ev(a) for a in node.args]
            nums = [a for a in args if a is not None]
            if len(nums) != len(args):
                return None
            if node.func.id == "min":
                return min(nums)
            if node.func.id == "max":
                return max(nums)
            value, low, high = nums
            return max(low, min(high, value))
        raise FormulaError(f"cannot evaluate {ast.dump(node)}")

    return ev(_parse(formula))
