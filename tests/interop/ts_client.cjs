// The official TypeScript SDK client (@modelcontextprotocol/client, pinned in .ci/install-server.sh) against
// hegelion-server: one session per protocol version, each running the interop sequence (see sequence.md), printed as
// one JSON line per version. Run with NODE_PATH pointing at the node_modules that holds the client.
//
//   node ts_client.cjs stdio SERVER_COMMAND DATA_DIR VERSION...
//   node ts_client.cjs http URL - VERSION...
"use strict";

const { Client, StreamableHTTPClientTransport } = require("@modelcontextprotocol/client");
const { StdioClientTransport } = require("@modelcontextprotocol/client/stdio");

const MODERN = "2026-07-28";

// The client's model: plain prose, no DSPy field markers (as most models answer), and a bullet list for the flaws.
function sample(request, requests) {
  requests.push(request);
  const asked = JSON.stringify(request.params ?? request).match(/starting with the field `\[\[ ## (\w+) ## \]\]`/);
  const step = asked ? asked[1] : "answer";
  const text = step === "antithesis" ? "A critique in prose.\n\n- the thesis skips a case" : `A plain ${step}.`;
  return { role: "assistant", content: { type: "text", text }, model: "ts-client-model" };
}

function structured(result) {
  return result.structuredContent ?? JSON.parse(result.content[0].text);
}

async function session(transportKind, target, dataDir, version) {
  const requests = [];
  const options = { capabilities: { sampling: {} } };
  if (version === MODERN) options.versionNegotiation = { mode: { pin: MODERN } };
  else options.supportedProtocolVersions = [version];
  const client = new Client({ name: "interop-ts", version: "1.0.0" }, options);
  client.setRequestHandler("sampling/createMessage", async (request) => sample(request, requests));
  const transport =
    transportKind === "stdio"
      ? new StdioClientTransport({ command: target, args: [], env: { HEGELION_DATA_DIR: dataDir }, stderr: "ignore" })
      : new StreamableHTTPClientTransport(new URL(target));
  await client.connect(transport);
  const tag = `ts-${transportKind}-${version}`;
  const out = { client: "typescript", transport: transportKind, asked: version };
  try {
    out.version = client.getNegotiatedProtocolVersion();
    out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
    const logged = await client.callTool({
      name: "log_trace",
      arguments: { task: `interop ${tag}`, thesis: "Yes.", antithesis: "No.", synthesis: "Maybe.", tags: [tag] },
    });
    out.log_trace = { isError: logged.isError ?? false, ...structured(logged) };
    const workflow = await client.callTool({ name: "run_dialectic", arguments: { task: `workflow ${tag}`, thesis: "Yes." } });
    out.prompt_workflow = structured(workflow);
    const sampled = await client.callTool({ name: "run_dialectic", arguments: { task: `sampling ${tag}`, iterations: 2 } });
    out.sampling = { ...structured(sampled), requests: requests.length };
    const exported = await client.callTool({
      name: "export_dataset",
      arguments: { format: "sft", output_name: `${tag}.jsonl`, force: true },
    });
    out.export_dataset = { isError: exported.isError ?? false, ...structured(exported) };
    const unknown = await client.callTool({ name: "log_trace", arguments: { task: "t", model_name: "x" } });
    out.unknown_argument = { isError: unknown.isError ?? false, text: unknown.content[0].text };
    const resource = await client.readResource({ uri: "hegelion://traces" });
    out.resource = JSON.parse(resource.contents[0].text).stats;
    const prompt = await client.getPrompt({ name: "dialectic", arguments: { task: `prompt ${tag}` } });
    out.prompt = prompt.messages.map((m) => m.content.text).join("\n");
  } finally {
    await client.close();
  }
  return out;
}

async function main() {
  const [transportKind, target, dataDir, ...versions] = process.argv.slice(2);
  for (const version of versions) {
    let line;
    try {
      line = await session(transportKind, target, dataDir, version);
    } catch (error) {
      line = { client: "typescript", transport: transportKind, asked: version, error: String(error?.stack ?? error) };
    }
    process.stdout.write(JSON.stringify(line) + "\n");
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(String(error?.stack ?? error) + "\n");
    process.exit(1);
  },
);
