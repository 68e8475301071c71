"""The cloud deployment's settings table (``cdk.json`` context, read by stacks/ and ``bincount cost``) and its
cost model. Import-light."""

from bincount.cloud.cost import CostError, compare, format_table
from bincount.cloud.settings import SETTING_SPECS, Settings, SettingsError, load_settings

__all__ = ["SETTING_SPECS", "CostError", "Settings", "SettingsError", "compare", "format_table", "load_settings"]
