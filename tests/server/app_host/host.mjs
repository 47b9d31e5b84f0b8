// A minimal MCP Apps host for the browser test: the official TypeScript client over streamable HTTP (declaring the
// io.modelcontextprotocol/ui extension) and the official host side, ext-apps' AppBridge, rendering a tool's ui://
// view in a sandboxed iframe. Nothing of the protocol between host and view is written here. Bundled by esbuild.
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";
import { AppBridge, PostMessageTransport, getToolUiResourceUri } from "@modelcontextprotocol/ext-apps/app-bridge";

const UI = { "io.modelcontextprotocol/ui": { mimeTypes: ["text/html;profile=mcp-app"] } };
let client;
let views = 0;

async function connect() {
  if (client) return client;
  client = new Client({ name: "hegelion-test-host", version: "1.0.0" }, { capabilities: { extensions: UI } });
  await client.connect(new StreamableHTTPClientTransport(new URL("/mcp", location.href)));
  return client;
}

// Call `name` with `args` as a host does: render its view, hand it the input, then the result.
async function open(name, args) {
  const mcp = await connect();
  const { tools } = await mcp.listTools();
  const tool = tools.find((t) => t.name === name);
  const uri = getToolUiResourceUri(tool);
  const { contents } = await mcp.readResource({ uri });
  const frame = document.createElement("iframe");
  frame.id = `view-${++views}`;
  frame.title = `${name} view`;
  frame.setAttribute("sandbox", "allow-scripts allow-forms");
  document.getElementById("views").append(frame);
  const bridge = new AppBridge(
    mcp,
    { name: "hegelion-test-host", version: "1.0.0" },
    { serverTools: {}, openLinks: {}, logging: {} },
    { hostContext: { theme: "light", displayMode: "inline" } },
  );
  bridge.onsizechange = ({ height }) => {
    if (height) frame.style.height = `${Math.min(height, 4000)}px`;
  };
  const ready = new Promise((resolve) => (bridge.oninitialized = resolve));
  await bridge.connect(new PostMessageTransport(frame.contentWindow, frame.contentWindow));
  frame.srcdoc = contents[0].text;
  await ready;
  await bridge.sendToolInput({ arguments: args });
  const result = await mcp.callTool({ name, arguments: args });
  await bridge.sendToolResult(result);
  return { frame: frame.id, result };
}

window.host = { open };
