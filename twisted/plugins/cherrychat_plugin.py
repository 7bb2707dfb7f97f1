"""Makes ``twistd cherrychat`` start the CherryChat daemon."""

from twisted.application.service import ServiceMaker

cherrychat = ServiceMaker(
    "CherryChat",
    "cherrychat.tap",
    "A real-time chat and comet push daemon: the Orbited tutorial's chat in one process.",
    "cherrychat",
)
