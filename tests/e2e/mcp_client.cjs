// An MCP client built on the official TypeScript SDK (@modelcontextprotocol/sdk, installed by
// scripts/install-deps.sh into .cache/mcp-sdk), run by tests/e2e/mcp_e2e_test.cc against the
// real binary: over stdio (`knowledgebeast mcp`) or Streamable HTTP (`serve`, POST /mcp).
// It lists the tools, calls each one, checks results and error cases, and exits non-zero
// naming every failed check. The SDK itself validates each structuredContent against the
// tool's outputSchema, so a result that does not match its declared schema fails the call.
//
// Environment: KB_SOURCE_DIR, MODE (stdio | http); stdio: KB_BINARY, DATA_DIR, IMPORT_ROOT;
// http: URL, ADMIN_KEY, READ_KEY; both: IMPORT_FILE (inside the roots), OUTSIDE_FILE.
'use strict';
const path = require('path');
const { createRequire } = require('module');

const sdkRequire = createRequire(path.join(process.env.KB_SOURCE_DIR, '.cache/mcp-sdk/package.json'));
const { Client } = sdkRequire('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = sdkRequire('@modelcontextprotocol/sdk/client/stdio.js');
const { StreamableHTTPClientTransport } =
    sdkRequire('@modelcontextprotocol/sdk/client/streamableHttp.js');

const failures = [];
function check(ok, what, detail) {
  if (!ok) failures.push(what + (detail === undefined ? '' : ': ' + JSON.stringify(detail)));
}
function errorText(result) {
  return result && result.isError && result.content && result.content[0] ? result.content[0].text : '';
}

async function connect(key) {
  const client = new Client({ name: 'kb-e2e', version: '1.0.0' });
  let transport;
  if (process.env.MODE === 'stdio') {
    const args = ['mcp', '--data-dir', process.env.DATA_DIR, '--mcp-import-roots',
                  process.env.IMPORT_ROOT];
    transport = new StdioClientTransport({ command: process.env.KB_BINARY, args, stderr: 'inherit' });
  } else {
    transport = new StreamableHTTPClientTransport(new URL(process.env.URL + '/mcp'), {
      requestInit: key ? { headers: { Authorization: 'Bearer ' + key } } : {},
    });
  }
  await client.connect(transport);
  return client;
}

async function main() {
  const http = process.env.MODE === 'http';
  const client = await connect(http ? process.env.ADMIN_KEY : null);
  check(client.getServerVersion().name === 'knowledgebeast', 'serverInfo', client.getServerVersion());

  const { tools } = await client.listTools();
  const names = tools.map((t) => t.name).sort();
  check(JSON.stringify(names) === JSON.stringify(['backup_status', 'create_project', 'delete_document',
        'get_document', 'ingest_file', 'ingest_text', 'list_documents', 'list_projects', 'search',
        'stats']), 'tools/list names', names);
  for (const t of tools) check(t.outputSchema && t.inputSchema.type === 'object', 'schemas of ' + t.name);

  const call = (name, args) => client.callTool({ name, arguments: args });

  let r = await call('create_project', { name: 'e2e' });
  check(!r.isError && r.structuredContent.project.name === 'e2e', 'create_project', r);
  const projectId = r.structuredContent.project.id;

  r = await call('ingest_text', { project: 'e2e', content: 'Otters hold hands while they sleep.',
                                  title: 'Otters', source: 'otters.txt', metadata: { topic: 'otters' } });
  check(!r.isError && r.structuredContent.outcome === 'created', 'ingest_text', r);
  const docId = r.structuredContent.document.id;

  r = await call('ingest_file', { project: 'e2e', path: process.env.IMPORT_FILE });
  check(!r.isError && r.structuredContent.document.title !== undefined, 'ingest_file inside roots', r);

  r = await call('ingest_file', { project: 'e2e', path: process.env.OUTSIDE_FILE });
  check(r.isError && errorText(r).includes('outside the import roots'), 'ingest_file outside roots', r);

  r = await call('search', { project: 'e2e', query: 'otters sleep', top_k: 3 });
  check(!r.isError && r.structuredContent.results.length >= 1 &&
        r.structuredContent.results[0].document_id === docId &&
        r.structuredContent.results[0].source === 'otters.txt' &&
        r.structuredContent.results[0].text.includes('Otters') &&
        typeof r.structuredContent.results[0].score === 'number', 'search results', r);
  check(r.content[0].type === 'text' && JSON.parse(r.content[0].text).results.length ===
        r.structuredContent.results.length, 'search text content mirrors structuredContent', r);

  r = await call('search', { project: 'e2e', query: 'otters', top_k: 'many' });
  check(r.isError && errorText(r).includes("field 'top_k'"), 'bad input names the field', r);
  r = await call('search', { project: 'e2e' });
  check(r.isError && errorText(r).includes("field 'query' is required"), 'missing field named', r);

  r = await call('list_projects', {});
  check(!r.isError && r.structuredContent.count === 1, 'list_projects', r);
  r = await call('list_documents', { project: 'e2e' });
  check(!r.isError && r.structuredContent.total === 2, 'list_documents', r);
  r = await call('get_document', { project: 'e2e', document_id: docId });
  check(!r.isError && r.structuredContent.document.title === 'Otters', 'get_document', r);
  r = await call('stats', {});
  check(!r.isError && r.structuredContent.documents === 2, 'stats', r);
  r = await call('backup_status', {});
  if (http) {
    check(!r.isError && typeof r.structuredContent.backups === 'object', 'backup_status (server)', r);
  } else {
    check(r.isError, 'backup_status is an error on stdio', r);
  }

  const { resources } = await client.listResources();
  const uri = 'kb://' + projectId + '/documents/' + docId;
  check(resources.some((x) => x.uri === uri), 'resources/list has the document', resources);
  const read = await client.readResource({ uri });
  check(read.contents[0].text === 'Otters hold hands while they sleep.', 'resources/read text', read);
  let notFound = false;
  try {
    await client.readResource({ uri: 'kb://' + projectId + '/documents/nope' });
  } catch (e) {
    notFound = e.code === -32002;
  }
  check(notFound, 'resources/read of a missing document is -32002');

  let unknownTool = false;
  try {
    const u = await call('no_such_tool', {});
    unknownTool = u.isError === true;  // an SDK may surface it either way
  } catch (e) {
    unknownTool = e.code === -32602;
  }
  check(unknownTool, 'unknown tool refused');

  r = await call('delete_document', { project: 'e2e', document_id: docId });
  check(!r.isError && r.structuredContent.deleted === true, 'delete_document', r);
  r = await call('get_document', { project: 'e2e', document_id: docId });
  check(r.isError && errorText(r).includes('not_found'), 'deleted document is gone', r);
  await client.ping();
  await client.close();

  if (http) {
    // A read key reads but cannot write.
    const reader = await connect(process.env.READ_KEY);
    r = await reader.callTool({ name: 'search', arguments: { project: 'e2e', query: 'otters' } });
    check(!r.isError, 'read key searches', r);
    r = await reader.callTool({ name: 'ingest_text', arguments: { project: 'e2e', content: 'x' } });
    check(r.isError && errorText(r).includes('permission_denied'), 'read key cannot ingest', r);
    r = await reader.callTool({ name: 'delete_document', arguments: { project: 'e2e', document_id: docId } });
    check(r.isError && errorText(r).includes('permission_denied'), 'read key cannot delete', r);
    await reader.close();
    // No key: the connection is refused with 401.
    let refused = false;
    try {
      const anon = await connect(null);
      await anon.close();
    } catch (e) {
      refused = String(e).includes('401') || e.code === 401;
      if (!refused) failures.push('no key: unexpected error ' + String(e));
    }
    check(refused, 'no key is refused (401)');
  }

  if (failures.length) {
    console.error('FAILED CHECKS:\n  ' + failures.join('\n  '));
    process.exit(1);
  }
  console.log('mcp e2e (' + process.env.MODE + '): all checks passed');
}

main().catch((e) => {
  console.error('mcp client error: ' + (e && e.stack ? e.stack : e));
  process.exit(2);
});
