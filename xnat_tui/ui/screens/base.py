"""How every screen reaches the application: ``self.xapp``, the typed App."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from textual.message_pump import MessagePump

if TYPE_CHECKING:
    from xnat_tui.ui.app import XnatTuiApp


class AppScreen:
    """Mixed into every screen (before ``Screen``) so each gets its dependencies one way:
    the workbench, the upload session, the client and the config, as attributes of
    :class:`XnatTuiApp`."""

    @property
    def xapp(self) -> XnatTuiApp:
        return cast("XnatTuiApp", cast(MessagePump, self).app)
