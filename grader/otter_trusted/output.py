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
        content, kind = msg["content"], msg["msg_type"]
        if kind == "stream":
            self.add_text(content.get("text", ""))
        elif kind == "error":
            self.add_text("%s: %s\n" % (content.get("ename"), content.get("evalue")))
        elif kind in ("execute_result", "display_data"):
            self.add_text(str(content.get("data", {}).get("text/plain", "")) + "\n")

    def tail(self):
        return "".join(self._chunks)[-self.limit:]
