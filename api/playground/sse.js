// Server-Sent Events read from a fetch body (EventSource cannot send an Authorization
// header): frames are split as the HTML standard's parser does, on CRLF, LF or CR.

const LINE_END = /\r\n|\n|\r/g;

/**
 * The events of an SSE body, as `{event, data, id}` (data is the joined `data:` lines);
 * comments (`: ping`) are skipped. Ends when the body ends.
 */
export async function* sseEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let frame = { event: "", data: [], id: null };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let start = 0;
      LINE_END.lastIndex = 0;
      for (let m = LINE_END.exec(buffer); m; m = LINE_END.exec(buffer)) {
        // a CR at the very end may be the first half of a CRLF still on its way
        if (m[0] === "\r" && m.index === buffer.length - 1) break;
        const line = buffer.slice(start, m.index);
        start = m.index + m[0].length;
        if (line === "") {
          if (frame.data.length) {
            yield { event: frame.event || "message", data: frame.data.join("\n"), id: frame.id };
          }
          frame = { event: "", data: [], id: null };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") frame.event = text;
        else if (field === "data") frame.data.push(text);
        else if (field === "id") frame.id = text;
      }
      buffer = buffer.slice(start);
    }
  } finally {
    // the caller stopped early, or the body ended: either way let the connection go
    await reader.cancel().catch(() => {});
  }
}
