"""The one place the pack imports ComfyUI's node API from (pin a version here if needed)."""
import dataclasses

from comfy_api.latest import ComfyExtension, io, ui

SwDScheduleType = io.Custom("SWD_SCHEDULE")


def schema(*, search_aliases: list[str] = (), schema_class: type = io.Schema, **fields) -> io.Schema:
    """``io.Schema(**fields)`` plus ``search_aliases`` where the installed ComfyUI has that field.

    ComfyUI 0.3.75's Schema has no ``search_aliases`` (an unknown field is a TypeError); newer
    ones show the aliases in the node search. On 0.3.75 the nodes are found by their display
    names ("SwD ...") and categories.
    """
    if search_aliases and "search_aliases" in {f.name for f in dataclasses.fields(schema_class)}:
        fields["search_aliases"] = list(search_aliases)
    return schema_class(**fields)


__all__ = ["ComfyExtension", "io", "ui", "schema", "SwDScheduleType"]
