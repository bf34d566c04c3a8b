#!/usr/bin/env node
// Calls trainspec.v1.CompilerService from Node: compiles a spec file and prints the plan,
// or, for an invalid spec, the decoded google.rpc error details (ErrorInfo, BadRequest
// field violations and trainspec's DiagnosticList with source locations).
//
//   node client.js [--address 127.0.0.1:50051] [--ca ca.pem] [--token TOKEN]
//                  [--validate-only] [--defaults FILE]... SPEC_FILE
//
// Exit codes: 0 compiled, 1 the spec is invalid, 2 any other failure.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

// The repository's contract, loaded as-is: nothing is generated or copied.
const REPO_PROTO_DIR = path.resolve(__dirname, '..', '..', '..', 'proto');
// Minimal copies of google/rpc/{status,error_details}.proto (see protos/).
const VENDORED_PROTO_DIR = path.join(__dirname, 'protos');

function parseArgs(argv) {
  const args = { address: '127.0.0.1:50051', defaults: [], validateOnly: false };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      i += 1;
      return argv[i];
    };
    if (arg === '--address') args.address = next();
    else if (arg === '--ca') args.ca = next();
    else if (arg === '--token') args.token = next();
    else if (arg === '--defaults') args.defaults.push(next());
    else if (arg === '--validate-only') args.validateOnly = true;
    else if (arg.startsWith('-')) throw new Error(`unknown option ${arg}`);
    else args.spec = arg;
  }
  if (!args.spec) throw new Error('give a spec file');
  return args;
}

function loadClient(args) {
  const definition = protoLoader.loadSync('trainspec/v1/compiler_service.proto', {
    includeDirs: [REPO_PROTO_DIR],
    keepCase: true, // field names as in the .proto (snake_case)
    longs: String,
    enums: String,
    defaults: false,
    oneofs: true,
  });
  const { CompilerService } = grpc.loadPackageDefinition(definition).trainspec.v1;
  const credentials = args.ca
    ? grpc.credentials.createSsl(fs.readFileSync(args.ca))
    : grpc.credentials.createInsecure();
  return new CompilerService(args.address, credentials);
}

// Decoders for google.rpc.Status and the Any messages inside it.
function loadDetailTypes() {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    for (const dir of [VENDORED_PROTO_DIR, REPO_PROTO_DIR]) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    return protobuf.util.path.resolve(origin, target); // well-known types bundled in protobufjs
  };
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto',
    'trainspec/v1/compiler_service.proto'], { keepCase: true });
  return root;
}

// google.protobuf.Struct / Value (as proto-loader decodes them) -> plain JSON.
function fromValue(value) {
  if (!value || value.kind === undefined) return null;
  switch (value.kind) {
    case 'nullValue': return null;
    case 'structValue': return fromStruct(value.structValue);
    case 'listValue': return (value.listValue.values || []).map(fromValue);
    default: return value[value.kind];
  }
}

function fromStruct(struct) {
  const out = {};
  for (const [key, value] of Object.entries((struct && struct.fields) || {})) {
    out[key] = fromValue(value);
  }
  return out;
}

function printPlan(response) {
  const plan = response.plan;
  if (!plan) {
    console.log('valid (validate_only: no plan returned)');
    return;
  }
  console.log(`operation: ${plan.sagemaker_operation}`);
  console.log(`model artifact: ${plan.model_artifact_uri || '-'}`);
  console.log(`digest: ${plan.digest}`);
  // sagemaker_request_json keeps botocore's types (InstanceCount: 1); the Struct beside it
  // holds every number as a double, so it is only the fallback for older servers.
  const request = plan.sagemaker_request_json
    ? JSON.parse(plan.sagemaker_request_json)
    : fromStruct(plan.sagemaker_request);
  console.log('sagemaker_request:');
  console.log(JSON.stringify(request, null, 2));
  for (const warning of response.warnings || []) {
    console.log(`warning[${warning.code}] ${warning.field_path}: ${warning.message}`);
  }
}

function printErrorDetails(error, root) {
  console.log(`${grpc.status[error.code]}: ${error.details}`);
  const raw = error.metadata && error.metadata.get('grpc-status-details-bin')[0];
  if (!raw) return;
  const status = root.lookupType('google.rpc.Status').decode(raw);
  for (const detail of status.details) {
    const typeName = detail.type_url.slice(detail.type_url.lastIndexOf('/') + 1);
    let type;
    try {
      type = root.lookupType(typeName);
    } catch (lookupError) {
      console.log(`(detail of unknown type ${typeName})`);
      continue;
    }
    const message = type.toObject(type.decode(detail.value), { enums: String, defaults: false });
    if (typeName === 'google.rpc.ErrorInfo') {
      console.log(`ErrorInfo: reason=${message.reason} domain=${message.domain} `
        + `metadata=${JSON.stringify(message.metadata || {})}`);
    } else if (typeName === 'google.rpc.BadRequest') {
      for (const violation of message.field_violations || []) {
        console.log(`BadRequest violation: field=${violation.field} `
          + `reason=${violation.reason} description=${violation.description}`);
      }
    } else if (typeName === 'trainspec.v1.DiagnosticList') {
      for (const d of message.diagnostics || []) {
        const loc = d.location ? `${d.location.path}:${d.location.line || 0}:${d.location.column || 0}` : '-';
        console.log(`Diagnostic: ${loc} ${d.severity}[${d.code}] ${d.field_path}: ${d.message}`
          + (d.hint ? ` (hint: ${d.hint})` : ''));
      }
    } else if (typeName === 'google.rpc.RequestInfo') {
      console.log(`RequestInfo: request_id=${message.request_id}`);
    }
  }
}

function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (error) {
    console.error(`usage error: ${error.message}`);
    process.exit(2);
  }
  const client = loadClient(args);
  const root = loadDetailTypes();
  const source = (file) => ({ path: path.basename(file), content: fs.readFileSync(file, 'utf8') });
  const request = {
    source: source(args.spec),
    defaults: args.defaults.map(source),
    validate_only: args.validateOnly,
  };
  const metadata = new grpc.Metadata();
  if (args.token) metadata.set('authorization', `Bearer ${args.token}`);
  const deadline = new Date(Date.now() + 30000);
  client.Compile(request, metadata, { deadline }, (error, response) => {
    client.close();
    if (!error) {
      printPlan(response);
      process.exit(0);
    }
    printErrorDetails(error, root);
    process.exit(error.code === grpc.status.INVALID_ARGUMENT ? 1 : 2);
  });
}

main();
