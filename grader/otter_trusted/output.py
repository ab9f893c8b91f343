"""Capped capture of what the kernel prints; it is staff/debug material, never a result."""
MARKER = "OTTER-TRUSTED"


class OutputLog:
    def __init__(self, limit):
        self.limit = limit
        self._chunks = []
        self._size = 0
        self.saw_marker = False  # the kernel printed something that imitates our result line

    def add_text(self, text):
        if MARKER in text:
            self.saw_marker = True
        self._chunks.append(text)
        self._size += len(text)
        while self._size > self.limit and len(self._chunks) > 1:
            self._size -= len(self._chunks.pop(0))

    def add_message(self, msg):
        """Keep the text of an output message (its fields are the kernel's word: anything
        that is not text is kept as its type's name)."""
        content, kind = msg["content"], msg["msg_type"]
        if kind == "stream":
            self.add_text(text_of(content.get("text", "")))
        elif kind == "error":
            self.add_text("%s: %s\n" % (text_of(content.get("ename")), text_of(content.get("evalue"))))
        elif kind in ("execute_result", "display_data"):
            data = content.get("data")
            self.add_text(text_of(data.get("text/plain", "") if type(data) is dict else "") + "\n")

    def tail(self):
        return "".join(self._chunks)[-self.limit:]


def text_of(value, limit=None):
    """A string the kernel sent (capped at `limit`); anything else by its type's name,
    never its repr (which could be deep or huge)."""
    if type(value) is not str:
        return f"<{type(value).__name__}>"
    return value if limit is None else value[:limit]
