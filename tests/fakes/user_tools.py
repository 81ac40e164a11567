"""A user tools module, as `SPOOL_TOOLS_MODULE` names it: its TOOLS list is registered."""


async def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


TOOLS = [shout]
