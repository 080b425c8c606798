"""Reading DMN decision tables: XML safety, XSD validation, checks of every cell, and a strict UNIQUE engine.

SpiffWorkflow's DMN engine evaluates every cell through the workflow's script engine, so cells run in the
restricted environment like any other BPMN expression; here each cell is also compiled, as the engine will
evaluate it, when the table is deployed."""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.dmn.engine.DMNEngine import DMNEngine
from SpiffWorkflow.dmn.specs.model import HitPolicy
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.serializer.task_spec import BusinessRuleTaskConverter

from .errors import ProcessDefinitionError
from .restricted import ScriptCompileError, check_expression

DMN_NAMESPACES = (
    "http://www.omg.org/spec/DMN/20151101/dmn.xsd",  # DMN 1.1
    "http://www.omg.org/spec/DMN/20180521/MODEL/",  # DMN 1.2
    "https://www.omg.org/spec/DMN/20191111/MODEL/",  # DMN 1.3 (Camunda Modeler 5)
)
# What SpiffWorkflow's DMN engine runs; FIRST, ANY, PRIORITY... would silently behave as UNIQUE there.
SUPPORTED_HIT_POLICIES = ("UNIQUE", "COLLECT")
MAX_RULES = 1000  # a table is evaluated whole for every business rule task that runs it
# The engine turns a ``?`` outside quotes into the input's value (``4 < ? < 6``).
_QUESTION_MARK = re.compile(r"(\?)(?=(?:[^'\"]|['\"][^'\"]*['\"])*$)")


@dataclass(frozen=True)
class DecisionTable:
    """One checked DMN file: the decision it defines, its source as deployed, and its parsed XML."""

    decision_id: str
    name: str
    filename: str
    text: str  # the DMN XML as deployed, decoded by its BOM or declaration
    sha256: str  # of the file's bytes
    root: Any = field(repr=False, compare=False)  # the lxml root element, for SpiffWorkflow's parser


def _fail(message: str, filename: str, node: etree._Element | None = None,
          element_id: str | None = None) -> ProcessDefinitionError:
    if element_id is None and node is not None:
        element_id = node.get("id")
    line = node.sourceline if node is not None else None
    return ProcessDefinitionError(message, filename=filename, element_id=element_id, line=line)


def _local(node: etree._Element) -> str:
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def _children(node: etree._Element, name: str) -> list[etree._Element]:
    return [child for child in node if _local(child) == name]


def _cell_text(entry: etree._Element) -> tuple[str | None, etree._Element]:
    texts = _children(entry, "text")
    if not texts:
        return None, entry
    return texts[0].text, texts[0]


def input_cell_expression(input_expression: str, cell: str) -> list[str]:
    """The expressions SpiffWorkflow's DMN engine evaluates for one input cell, built as it builds them."""
    if _QUESTION_MARK.search(cell):
        return [input_expression, _QUESTION_MARK.sub("dmninputexpr", cell)]
    try:
        ast.parse(cell)
        needs_eq = True
    except SyntaxError:
        needs_eq = False
    return [f"({input_expression}) == ({cell})" if needs_eq else input_expression + cell]


def _check_code(expression: str, what: str, *, decision_id: str, rule_id: str | None, filename: str,
                node: etree._Element, shown: str | None = None) -> None:
    try:
        check_expression(expression)
    except ScriptCompileError as exc:
        where = f"decision '{decision_id}'" + (f", rule '{rule_id}'" if rule_id else "")
        raise _fail(f"{where}: {what} {(shown or expression).strip()[:80]!r} is not allowed: {exc.message}",
                    filename, node, element_id=rule_id or decision_id) from None


def _check_table(decision: etree._Element, filename: str) -> None:
    """Refuse what SpiffWorkflow's DMN parser accepts but cannot run right, or runs as untrusted code."""
    decision_id = decision.get("id") or ""
    tables = _children(decision, "decisionTable")
    if len(tables) != 1:
        raise _fail(f"decision '{decision_id}' must hold exactly one decisionTable, found {len(tables)}",
                    filename, decision)
    table = tables[0]
    policy = table.get("hitPolicy", "UNIQUE")
    if policy not in SUPPORTED_HIT_POLICIES:
        raise _fail(f"decision '{decision_id}': hit policy {policy!r} is not supported (supported: "
                    f"{', '.join(SUPPORTED_HIT_POLICIES)})", filename, table, element_id=decision_id)
    inputs = _children(table, "input")
    outputs = _children(table, "output")
    rules = _children(table, "rule")
    input_expressions: list[str] = []
    for index, node in enumerate(inputs, 1):
        expression = node.find("{*}inputExpression/{*}text")
        text = (expression.text or "").strip() if expression is not None else ""
        if not text:
            raise _fail(f"decision '{decision_id}': input {index} ({node.get('label') or node.get('id')}) has no "
                        "input expression", filename, node, element_id=decision_id)
        _check_code(text, f"input {index} expression", decision_id=decision_id, rule_id=None, filename=filename,
                    node=expression if expression is not None else node)
        input_expressions.append(text)
    if not outputs:
        raise _fail(f"decision '{decision_id}' has no output", filename, table, element_id=decision_id)
    for index, node in enumerate(outputs, 1):
        name = (node.get("name") or "").strip()
        if not name:
            raise _fail(f"decision '{decision_id}': output {index} ({node.get('label') or node.get('id')}) has no "
                        "name: the name is the variable the result is stored in", filename, node,
                        element_id=decision_id)
        if not name.isidentifier():
            raise _fail(f"decision '{decision_id}': output name {name!r} is not a plain variable name", filename,
                        node, element_id=decision_id)
    if not rules:
        raise _fail(f"decision '{decision_id}' has no rules", filename, table, element_id=decision_id)
    if len(rules) > MAX_RULES:
        raise _fail(f"decision '{decision_id}' has {len(rules)} rules; at most {MAX_RULES} are allowed", filename,
                    table, element_id=decision_id)
    for rule in rules:
        rule_id = rule.get("id") or ""
        entries, results = _children(rule, "inputEntry"), _children(rule, "outputEntry")
        if len(entries) != len(inputs) or len(results) != len(outputs):
            raise _fail(f"decision '{decision_id}', rule '{rule_id}': it has {len(entries)} input and "
                        f"{len(results)} output cells, the table {len(inputs)} inputs and {len(outputs)} outputs",
                        filename, rule)
        for index, (entry, input_expression) in enumerate(zip(entries, input_expressions, strict=True), 1):
            cell, node = _cell_text(entry)
            if cell is None or cell == "-":
                continue  # any value
            if not cell.strip():
                raise _fail(f"decision '{decision_id}', rule '{rule_id}': input cell {index} is blank; write - "
                            "for any value", filename, node, element_id=rule_id)
            for expression in input_cell_expression(input_expression, cell):
                _check_code(expression, f"input cell {index}", decision_id=decision_id, rule_id=rule_id,
                            filename=filename, node=node, shown=cell)
        for index, entry in enumerate(results, 1):
            cell, node = _cell_text(entry)
            if cell is None or not cell.strip():
                continue  # SpiffWorkflow gives an empty output cell the value ""
            _check_code(cell, f"output cell {index}", decision_id=decision_id, rule_id=rule_id, filename=filename,
                        node=node)


def parse_decision(source: bytes, filename: str) -> DecisionTable:
    """Read and check one DMN file holding one decision table; every problem is a ProcessDefinitionError."""
    from .parser import read_xml, source_text  # parser imports this module for its business rule tasks

    tree = read_xml(source, filename)  # no entities, no network, no huge trees
    root = tree.getroot()
    if _local(root) != "definitions" or etree.QName(root).namespace not in DMN_NAMESPACES:
        raise ProcessDefinitionError(
            "the root element is not a DMN definitions element (DMN 1.1, 1.2 or 1.3 namespace)", filename=filename,
            line=root.sourceline)
    decisions = _children(root, "decision")
    if len(decisions) != 1:
        raise ProcessDefinitionError(f"a DMN file must hold exactly one decision, found {len(decisions)}",
                                     filename=filename, line=root.sourceline)
    decision = decisions[0]
    decision_id = decision.get("id") or ""
    if not decision_id.isidentifier():
        raise _fail(f"the decision id {decision_id!r} is not a plain name", filename, decision)
    try:
        # SpiffWorkflow's own parser: the DMN schema, then its model of the table (what a case will run).
        probe = SpiffBpmnParser(validator=VALIDATOR)
        probe.add_dmn_xml(root, filename=filename)
        _check_table(decision, filename)
        probe.dmn_parsers[decision_id].parse()
    except ValidationException as exc:
        line = getattr(exc, "line_number", "") or getattr(exc, "sourceline", "") or None
        message = str(exc.args[0]) if exc.args else str(exc)
        raise ProcessDefinitionError(message, filename=filename, element_id=getattr(exc, "id", None) or None,
                                     line=int(line) if line else None) from None
    except ProcessDefinitionError:
        raise
    except Exception as exc:  # noqa: BLE001 - the file is untrusted: whatever the library trips over refuses it
        raise ProcessDefinitionError(f"the file cannot be read as a decision table ({type(exc).__name__}: {exc})",
                                     filename=filename) from None
    return DecisionTable(decision_id=decision_id, name=decision.get("name") or decision_id, filename=filename,
                         text=source_text(source, filename, tree), sha256=hashlib.sha256(source).hexdigest(),
                         root=root)


class UniqueDMNEngine(DMNEngine):
    """SpiffWorkflow's DMN engine, except that UNIQUE means it: exactly one rule must match.

    The library's own engine returns the first match under UNIQUE and nothing at all when no rule
    matches, which would send a case on with its outputs unset."""

    def decide(self, task: Any) -> list[Any]:
        """The rules that match the task's data; for UNIQUE exactly one, or a ValueError naming them."""
        table = self.decision_table
        if table.hit_policy != HitPolicy.UNIQUE.value:
            return list(super().decide(task))
        matched = [rule for rule in table.rules if self._DMNEngine__check_rule(rule, task)]  # type: ignore[attr-defined]
        if len(matched) != 1:
            inputs = ", ".join(f"{i.expression}" for i in table.inputs)
            which = ", ".join(f"'{rule.id}'" for rule in matched) or "none"
            raise ValueError(f"decision table '{table.id}' (hit policy UNIQUE) must match exactly one rule for "
                             f"its inputs ({inputs}); matched {len(matched)}: {which}")
        return matched


class DecisionParser(SpiffBpmnParser):
    """The spiff dialect parser whose business rule tasks run the strict UNIQUE engine."""

    def get_engine(self, decision_ref: str, node: Any) -> DMNEngine:
        """The engine of a decision table deployed with the process."""
        return UniqueDMNEngine(super().get_engine(decision_ref, node).decision_table)


class UniqueBusinessRuleTaskConverter(BusinessRuleTaskConverter):  # type: ignore[misc]
    """Restores business rule tasks stored with a version's spec with the strict UNIQUE engine."""

    def from_dict(self, dct: dict[str, Any]) -> Any:
        """Rebuild the task spec and give it the strict engine."""
        spec = super().from_dict(dct)
        spec.dmnEngine = UniqueDMNEngine(spec.dmnEngine.decision_table)
        return spec
