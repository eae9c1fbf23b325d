"""Parameter inputs generated from a procedure's PyMeasure parameters, checked as the CLI checks them.

Booleans and lists use PyMeasure's own inputs (:class:`pymeasure.display.inputs.BooleanInput`, ``ListInput``: a
check box, a drop-down of the allowed choices with their units). Numbers and free text use a line edit
(:class:`pymeasure.display.inputs.StringInput`) rather than PyMeasure's spin boxes, because a spin box clamps an
out-of-range value silently: here every edit goes through :func:`labctl.params.set_parameter`, the function behind
``labctl run --set``, and a bad value is refused in the field with exactly the CLI's message (shown under the
field, the field outlined red), e.g. ``parameter step_V = '0': allowed 1e-05 to 10 V``.
"""

from __future__ import annotations

from typing import Any

from pymeasure.display.inputs import BooleanInput, ListInput, StringInput
from pymeasure.experiment import BooleanParameter, ListParameter
from qtpy import QtCore, QtWidgets

from labctl.config import ConfigError
from labctl.params import describe_allowed, set_parameter
from procedures.base import LabProcedure

_BAD_STYLE = "border: 1px solid #c0392b;"


def parameter_text(value: Any) -> str:
    """A parameter value as the text ``--set NAME=VALUE`` takes (floats in full precision)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return "" if value is None else str(value)


class TextInput(StringInput):
    """PyMeasure's line-edit input for a number or a text parameter; the value is the text as typed."""

    def setValue(self, value: Any) -> None:  # noqa: N802 - Qt naming
        self.setText(parameter_text(value))

    def value(self) -> str:
        return self.text()


class ParameterForm(QtWidgets.QWidget):
    """One input per parameter of ``procedure_cls`` (label, input, units, the allowed values as a tooltip), and a
    message line under each input that holds the CLI's error for a refused value.

    Signals
    -------
    validity_changed(bool)
        Whether every field now holds an allowed value.
    """

    validity_changed = QtCore.Signal(bool)

    def __init__(self, procedure_cls: type[LabProcedure], parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.procedure_cls = procedure_cls
        self._defaults = procedure_cls()
        self.inputs: dict[str, QtWidgets.QWidget] = {}
        self.messages: dict[str, QtWidgets.QLabel] = {}
        self.errors: dict[str, str] = {}
        layout = QtWidgets.QFormLayout(self)
        layout.setFieldGrowthPolicy(QtWidgets.QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        for name, param in self._defaults._parameters.items():
            widget = self._make_input(name, param)
            help_text = f"{name}: {param.name}\nallowed: {describe_allowed(param)}"
            widget.setToolTip(help_text)
            message = QtWidgets.QLabel("")
            message.setObjectName(f"error_{name}")
            message.setStyleSheet("color: #c0392b;")
            message.setWordWrap(True)
            message.hide()
            box = QtWidgets.QWidget()
            column = QtWidgets.QVBoxLayout(box)
            column.setContentsMargins(0, 0, 0, 0)
            column.setSpacing(1)
            row = QtWidgets.QHBoxLayout()
            row.addWidget(widget, 1)
            units = getattr(param, "units", None)
            if units and not isinstance(param, ListParameter):
                row.addWidget(QtWidgets.QLabel(str(units)))
            column.addLayout(row)
            column.addWidget(message)
            label = QtWidgets.QLabel(name)
            label.setToolTip(help_text)
            layout.addRow(label, box)
            self.inputs[name], self.messages[name] = widget, message

    def _make_input(self, name: str, param: Any) -> QtWidgets.QWidget:
        if isinstance(param, BooleanParameter):
            widget: QtWidgets.QWidget = BooleanInput(param)
            widget.setText("")
            widget.stateChanged.connect(lambda *_: self._check(name))
        elif isinstance(param, ListParameter):
            widget = ListInput(param)
            widget.currentIndexChanged.connect(lambda *_: self._check(name))
        else:
            widget = TextInput(param)
            widget.textChanged.connect(lambda *_: self._check(name))
        widget.setObjectName(f"input_{name}")
        return widget

    # -- values -------------------------------------------------------------------------------------------------
    def text(self, name: str) -> str:
        """The field's value as ``--set`` text."""
        widget = self.inputs[name]
        if isinstance(widget, BooleanInput):
            return "true" if widget.isChecked() else "false"
        if isinstance(widget, ListInput):
            return str(widget.value())
        return widget.text()

    def set_text(self, name: str, text: str) -> None:
        """Put ``text`` in a field as a person would (a list or a check box is set to the matching choice)."""
        widget = self.inputs[name]
        if isinstance(widget, BooleanInput):
            widget.setChecked(text.strip().lower() in ("1", "true", "yes", "on"))
        elif isinstance(widget, ListInput):
            choices = [str(c) for c in widget._parameter.choices]
            widget.setCurrentIndex(choices.index(text))
        else:
            widget.setText(text)
        self._check(name)

    def settings(self) -> list[str]:
        """``NAME=VALUE`` for every field that differs from the procedure's default (what ``--set`` would take)."""
        out = []
        for name in self.inputs:
            text = self.text(name)
            if text != parameter_text(getattr(self._defaults, name)):
                out.append(f"{name}={text}")
        return out

    def reset(self, settings: list[str] | tuple[str, ...] = ()) -> None:
        """Every field back to its default, then ``settings`` (``NAME=VALUE``) applied."""
        for name in self.inputs:
            self.set_text(name, parameter_text(getattr(self._defaults, name)))
        for item in settings:
            name, _, value = item.partition("=")
            self.set_text(name, value)

    @property
    def valid(self) -> bool:
        return not self.errors

    # -- checks -------------------------------------------------------------------------------------------------
    def _check(self, name: str) -> None:
        """The field through :func:`labctl.params.set_parameter` on a scratch procedure: its message or none."""
        was_valid = self.valid
        try:
            set_parameter(self.procedure_cls(), name, self.text(name))
        except ConfigError as exc:
            self.errors[name] = str(exc)
        else:
            self.errors.pop(name, None)
        widget, message = self.inputs[name], self.messages[name]
        if name in self.errors:
            message.setText(self.errors[name])
            message.show()
            widget.setStyleSheet(_BAD_STYLE)
        else:
            message.clear()
            message.hide()
            widget.setStyleSheet("")
        if self.valid != was_valid:
            self.validity_changed.emit(self.valid)
