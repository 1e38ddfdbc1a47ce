"""mypy plugin: give `x15g.config.Settings` its real fields.

`Settings` is made at import time from the option registry (`dataclasses.make_dataclass` over
`OPTIONS`), so a type checker sees no attributes on it. This plugin reads the same registry and
declares the class to mypy with one typed, read-only attribute per option, so `settings.workers`
is an `int` and a misspelt option name is an error. Nothing is written by hand: adding an option
to `OPTIONS` adds its attribute here. Registered in pyproject.toml (`[tool.mypy] plugins`).
"""

from __future__ import annotations

from typing import Callable

from mypy.nodes import GDEF, MDEF, ARG_STAR2, Argument, Block, ClassDef, SymbolTable, SymbolTableNode, TypeInfo, Var
from mypy.plugin import DynamicClassDefContext, Plugin
from mypy.plugins.common import add_method_to_class
from mypy.types import AnyType, Instance, NoneType, Type, TypeOfAny, UnionType

FACTORY = "x15g.config._settings_class"
# A validator's return annotation (or a default's type when the validator is a plain builtin).
_SCALARS = {"str": "builtins.str", "int": "builtins.int", "float": "builtins.float", "bool": "builtins.bool"}


def _field_types(ctx: DynamicClassDefContext) -> dict[str, Type]:
    from x15g.config import OPTIONS  # the registry itself: the plugin cannot drift from it

    def scalar(name: str) -> Instance:
        return ctx.api.named_type(_SCALARS[name])

    fields: dict[str, Type] = {}
    for option in OPTIONS:
        annotation = str(getattr(option.parse, "__annotations__", {}).get("return", ""))
        optional = annotation.replace(" ", "").endswith("|None") or option.default is None
        base = annotation.split("|")[0].strip() or type(option.default).__name__
        if option.repeat:
            fields[option.name] = ctx.api.named_type("builtins.tuple", [scalar("str")])
        elif base in _SCALARS:
            fields[option.name] = UnionType([scalar(base), NoneType()]) if optional else scalar(base)
        else:
            fields[option.name] = AnyType(TypeOfAny.explicit)
    fields["config_file"] = UnionType([scalar("str"), NoneType()])
    fields["sources"] = ctx.api.named_type("builtins.dict", [scalar("str"), scalar("str")])
    return fields


def _declare_settings(ctx: DynamicClassDefContext) -> None:
    classdef = ClassDef(ctx.name, Block([]))
    classdef.fullname = ctx.api.qualified_name(ctx.name)
    info = TypeInfo(SymbolTable(), classdef, ctx.api.cur_mod_id)
    classdef.info = info
    obj = ctx.api.named_type("builtins.object")
    info.bases = [obj]
    info.mro = [info, obj.type]
    for name, typ in _field_types(ctx).items():
        var = Var(name, typ)
        var.info = info
        var._fullname = f"{classdef.fullname}.{name}"
        var.is_property = True  # frozen dataclass: read-only
        info.names[name] = SymbolTableNode(MDEF, var)
    # A dataclass to dataclasses.replace and friends (the DataclassInstance protocol).
    dataclass_fields = Var("__dataclass_fields__", ctx.api.named_type(
        "builtins.dict", [ctx.api.named_type("builtins.str"), AnyType(TypeOfAny.explicit)]))
    dataclass_fields.info = info
    dataclass_fields.is_classvar = True
    dataclass_fields._fullname = f"{classdef.fullname}.__dataclass_fields__"
    info.names["__dataclass_fields__"] = SymbolTableNode(MDEF, dataclass_fields)
    kwargs = Var("values", AnyType(TypeOfAny.explicit))
    add_method_to_class(ctx.api, classdef, "__init__",
                        [Argument(kwargs, AnyType(TypeOfAny.explicit), None, ARG_STAR2)], NoneType())
    ctx.api.add_symbol_table_node(ctx.name, SymbolTableNode(GDEF, info))


class SettingsPlugin(Plugin):
    def get_dynamic_class_hook(self, fullname: str) -> Callable[[DynamicClassDefContext], None] | None:
        return _declare_settings if fullname == FACTORY else None


def plugin(version: str) -> type[Plugin]:
    return SettingsPlugin
