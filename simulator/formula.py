"""Rubric formulas such as ``(SR + CR) / Q``: parsed with ``ast`` and evaluated without ``eval``.

Rubric authors write summary metrics as arithmetic over names (code counts, group counts, session
item scores). Only numbers, names, + - * /, parentheses and the functions ``min``, ``max``,
``clamp`` are allowed. A division by zero (no questions asked yet) gives ``None``: the metric is
"not applicable", which is different from zero.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

FUNCTIONS = {"min", "max", "clamp"}


class FormulaError(ValueError):
    pass


def _parse(formula: str) -> ast.expr:
    try:
        tree = ast.parse(formula, mode="eval")
    except SyntaxError as exc:
        raise FormulaError(f"formula {formula!r} is not valid arithmetic: {exc.msg}") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
                raise FormulaError(f"formula {formula!r}: only {sorted(FUNCTIONS)} may be called")
        elif not isinstance(
            node,
            (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Load,
             ast.Add, ast.Sub, ast.Mult, ast.Div, ast.USub, ast.UAdd),
        ):
            raise FormulaError(f"formula {formula!r}: {type(node).__name__} is not allowed")
        if isinstance(node, ast.Constant) and not isinstance(node.value, int | float):
            raise FormulaError(f"formula {formula!r}: only numbers are allowed as constants")
    return tree.body


def formula_names(formula: str) -> set[str]:
    """The variable names a formula uses (function names excluded)."""
    body = _parse(formula)
    calls = {id(n.func) for n in ast.walk(body) if isinstance(n, ast.Call)}
    return {n.id for n in ast.walk(body) if isinstance(n, ast.Name) and id(n) not in calls}


def evaluate(formula: str, values: Mapping[str, float | None]) -> float | None:
    """Evaluate with ``values``; missing names count 0, a None value or division by zero gives None."""

    def ev(node: ast.expr) -> float | None:
        if isinstance(node, ast.Constant):
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
            if any(a is None for a in args):
                return None
            nums = [a for a in args if a is not None]
            if node.func.id == "min":
                return min(nums)
            if node.func.id == "max":
                return max(nums)
            if len(nums) != 3:
                raise FormulaError("clamp takes (value, low, high)")
            return max(nums[1], min(nums[2], nums[0]))
        raise FormulaError(f"cannot evaluate {ast.dump(node)}")

    return ev(_parse(formula))
