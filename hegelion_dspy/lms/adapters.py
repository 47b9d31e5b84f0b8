"""Adapters for models that do not keep to DSPy's field markers.

- ``WholeReplyAdapter`` writes each call as a plain chat and reads the model's whole reply as the step's one text
  output (list fields from bullet or numbered lines). It never fails on format: the embedded model uses it.
- ``FallbackAdapter`` is DSPy's ChatAdapter for every other LM, except that a reply it cannot parse (prose without the
  ``[[ ## field ## ]]`` markers, a list field that does not decode) is read whole, as ``WholeReplyAdapter`` would, from
  the *same* reply: no second LM request (ChatAdapter's own fallback asks again through JSONAdapter), so a format
  hiccup costs neither a dialectic nor another approval in clients that ask the user per request.

Both report the adapter that produced the step to the step recorder (``base.recording_step``), so a trace says, per
step, whether its fields were parsed or read whole.
"""

from __future__ import annotations

import re
import textwrap
from typing import get_args, get_origin

import dspy
from dspy.utils.exceptions import AdapterParseError
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .base import ChatMessages, current_step

WHOLE_REPLY = "WholeReplyAdapter"


def _report(adapter: str) -> None:
    step = current_step()
    if step is not None:
        step.adapter = adapter


# -- the adapter ------------------------------------------------------------------------------------------------

_MARKER = re.compile(r"\[\[ ## \w+ ## \]\]")
_ITEM = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+(?P<text>\S.*)$")
_EMPHASIS = re.compile(r"^[*_`#\s]+|[*_`\s]+$")


def _is_str(annotation: object) -> bool:
    return annotation is str


def _label(name: str, field: FieldInfo | None = None) -> str:
    """'thesis' -> 'Thesis (the answer under attack)': the field's description tells a small model what it is."""
    label = name.replace("_", " ").capitalize()
    about = _sentence(_desc(field)).rstrip(".") if field is not None else ""
    return f"{label} ({about})" if about else label


def _desc(field: FieldInfo | None) -> str:
    extra = getattr(field, "json_schema_extra", None)
    return str(extra.get("desc") or "") if isinstance(extra, dict) else ""


def _sentence(desc: str) -> str:
    """A field description as the tail of a request: 'Your critique, in prose.' -> 'your critique, in prose.'"""
    desc = desc.strip()
    if not desc or desc.startswith("${"):  # DSPy's placeholder when a field has no description
        return ""
    return desc[0].lower() + desc[1:] if not desc[:2].isupper() else desc


def _render_value(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, BaseModel):
        return " - ".join(str(v).strip() for v in value.model_dump().values() if str(v).strip())
    if isinstance(value, dict):
        return " - ".join(str(v).strip() for v in value.values() if str(v).strip())
    if isinstance(value, (list, tuple)):
        return "\n".join(f"- {_render_value(item)}" for item in value if _render_value(item))
    return "" if value is None else str(value).strip()


def _items(text: str) -> list[str]:
    """The bullet or numbered lines of ``text``, without their markers and emphasis."""
    found = []
    for line in text.splitlines():
        match = _ITEM.match(line)
        if match:
            item = _EMPHASIS.sub("", match.group("text")).strip()
            if item:
                found.append(item)
    return found


def _list_value(annotation: object, items: list[str]) -> list[str] | list[BaseModel]:
    """``items`` as a value of a ``list[X]`` field: strings as they are, a model built from its first text field."""
    (element,) = get_args(annotation) or (str,)
    if isinstance(element, type) and issubclass(element, BaseModel):
        required = [n for n, f in element.model_fields.items() if f.is_required()] or list(element.model_fields)
        out = []
        for item in items:
            try:
                out.append(element.model_validate({required[0]: item}))
            except ValueError:
                continue
        return out
    if element is str:
        return items
    return []


class WholeReplyAdapter(dspy.Adapter):
    """A DSPy adapter for small models that cannot keep to field markers.

    ``format`` writes each call as a plain chat: the signature's instructions as the system message, the input
    fields as labelled text, and a one-line request built from the main output field's description. ``parse`` takes
    the whole reply as the first text output field; list fields are read from bullet or numbered lines, other extras
    stay empty. It never fails on format. Demos (e.g. from an optimized program) become earlier chat turns.
    """

    def __init__(self) -> None:
        super().__init__(use_native_function_calling=False)

    # -- format ---------------------------------------------------------------------------------------------------

    def format(
        self, signature: type[dspy.Signature], demos: list[dict[str, object]], inputs: dict[str, object]
    ) -> list[dict[str, str]]:
        messages: ChatMessages = [{"role": "system", "content": self.format_task_description(signature)}]
        for demo in demos:
            has_inputs = any(demo.get(name) for name in signature.input_fields)
            reply = self.format_assistant_message_content(signature, demo)
            if has_inputs and reply:
                messages.append({"role": "user", "content": self.format_user_message_content(signature, demo)})
                messages.append({"role": "assistant", "content": reply})
        messages.append({"role": "user", "content": self.format_user_message_content(signature, inputs)})
        return messages

    def format_task_description(self, signature: type[dspy.Signature]) -> str:
        return textwrap.dedent(signature.instructions).strip()

    def format_user_message_content(
        self,
        signature: type[dspy.Signature],
        inputs: dict[str, object],
        prefix: str = "",
        suffix: str = "",
        main_request: bool = False,
    ) -> str:
        parts = [prefix] if prefix else []
        for name, field in signature.input_fields.items():
            text = _render_value(inputs.get(name))
            if text:
                parts.append(f"{_label(name, field)}:\n{text}")
        main = _main_output(signature)
        request = _sentence(_desc(signature.output_fields[main]))
        parts.append(f"Write {request}" if request else f"Write the {_label(main).lower()}.")
        if suffix:
            parts.append(suffix)
        return "\n\n".join(parts)

    def format_assistant_message_content(
        self, signature: type[dspy.Signature], outputs: dict[str, object], missing_field_message: str | None = None
    ) -> str:
        main = _main_output(signature)
        text = _render_value(outputs.get(main))
        for name in signature.output_fields:
            if name == main:
                continue
            extra = _render_value(outputs.get(name))
            if extra and extra not in text:
                text = f"{text}\n\n{extra}" if text else extra
        return text

    # -- parse ----------------------------------------------------------------------------------------------------

    def parse(self, signature: type[dspy.Signature], completion: str) -> dict[str, object]:
        if _MARKER.search(completion):
            try:
                fields = dict(dspy.ChatAdapter().parse(signature, completion))
            except AdapterParseError:  # markers but not all fields: fall back to the plain text
                completion = _MARKER.sub("", completion)
            else:
                _report("ChatAdapter")
                return fields
        _report(WHOLE_REPLY)
        return read_whole_reply(signature, completion)


def read_whole_reply(signature: type[dspy.Signature], completion: str) -> dict[str, object]:
    """The output fields of ``signature`` from a plain reply: the whole text as the main text field, list fields from
    its bullet or numbered lines, other fields empty."""
    main = _main_output(signature)
    text = _strip_label(completion.strip(), [main, *signature.output_fields])
    fields: dict[str, object] = {main: text}
    items = _items(text)
    for name, field in signature.output_fields.items():
        if name != main:
            fields[name] = _list_value(field.annotation, items) if get_origin(field.annotation) is list else None
    return fields


def _main_output(signature: type[dspy.Signature]) -> str:
    names = list(signature.output_fields)
    return next((n for n in names if _is_str(signature.output_fields[n].annotation)), names[0])


def _strip_label(text: str, names: list[str]) -> str:
    """Drop a leading 'Antithesis:' / '**Critique:**'-style label the model echoes from the prompt."""
    for name in names:
        match = re.match(rf"^[*_#\s]*{re.escape(_label(name))}[*_\s]*:[*_\s]*", text, re.I)
        if match and text[match.end() :].strip():
            return text[match.end() :].strip()
    return text


class FallbackAdapter(dspy.ChatAdapter):
    """DSPy's ChatAdapter whose parse failure reads the same reply whole instead of asking the LM again.

    Prompts are exactly ChatAdapter's (so optimized programs and demos behave as usual). A reply in the field format is
    parsed as ChatAdapter parses it; any other reply becomes the step's text through ``read_whole_reply``. The
    adapter that produced the fields is reported to the step recorder: ``"ChatAdapter"`` or ``"WholeReplyAdapter"``.
    """

    def __init__(self) -> None:
        super().__init__(use_json_adapter_fallback=False)

    def parse(self, signature: type[dspy.Signature], completion: str) -> dict[str, object]:
        try:
            fields = dict(super().parse(signature, completion))
        except AdapterParseError:
            if not completion.strip():
                raise  # an empty reply is a failed step, never an empty answer
            _report(WHOLE_REPLY)
            return read_whole_reply(signature, _MARKER.sub("", completion))
        _report("ChatAdapter")
        return fields
