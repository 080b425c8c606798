"""Record forms: Camunda Forms JSON definitions that drive both HTML rendering and server-side validation."""

from __future__ import annotations

from .definitions import (
    FORM_FILE_SUFFIX,
    SUPPORTED_TYPES,
    Component,
    FormDefinition,
    FormDefinitionError,
    FormRegistry,
    FormValidationError,
    Option,
    UnknownFormError,
)
from .rendering import localized_title, render_form_fields, render_form_readonly, render_markdown, translate_message

__all__ = [
    "FORM_FILE_SUFFIX",
    "SUPPORTED_TYPES",
    "Component",
    "FormDefinition",
    "FormDefinitionError",
    "FormRegistry",
    "FormValidationError",
    "Option",
    "UnknownFormError",
    "localized_title",
    "render_form_fields",
    "render_form_readonly",
    "render_markdown",
    "translate_message",
]
