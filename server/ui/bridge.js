// The view's side of MCP Apps (JSON-RPC 2.0 over postMessage with the host), in a few lines and no dependencies:
// ui/initialize, then the host's tool-input / tool-result notifications, and tools/call through the host.
const bridge = (() => {
  const pending = new Map();
  const handlers = {};
  let nextId = 1;
  const send = (message) => window.parent.postMessage({ jsonrpc: "2.0", ...message }, "*");
  window.addEventListener("message", (event) => {
    const m = event.data;
    if (event.source !== window.parent || !m || m.jsonrpc !== "2.0") return;
    if (m.method === undefined) {
      const waiting = pending.get(m.id);
      if (!waiting) return;
      pending.delete(m.id);
      if (m.error) waiting.reject(new Error(m.error.message || "error"));
      else waiting.resolve(m.result);
      return;
    }
    if (m.id !== undefined) send({ id: m.id, result: {} }); // ping, ui/resource-teardown: nothing to hold
    const handler = handlers[m.method];
    if (handler) handler(m.params || {});
  });
  const request = (method, params) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      send({ id, method, params });
    });
  const notify = (method, params) => send({ method, params });
  const reportSize = () => {
    const el = document.documentElement;
    notify("ui/notifications/size-changed", { width: el.scrollWidth, height: el.scrollHeight });
  };
  return {
    on(method, handler) {
      handlers[method] = handler;
    },
    async connect(name) {
      const result = await request("ui/initialize", {
        appInfo: { name, version: "1" },
        appCapabilities: {},
        protocolVersion: "2026-01-26",
      });
      notify("ui/notifications/initialized", {});
      new ResizeObserver(reportSize).observe(document.body);
      return result;
    },
    callTool: (name, args) => request("tools/call", { name, arguments: args }),
  };
})();

// Build elements from text only: trace texts become text nodes, never markup.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function toolText(result) {
  return ((result && result.content) || []).filter((c) => c.type === "text").map((c) => c.text).join("\n");
}
