// A Node.js client of chainscale, as docs/clients.md prints it: @grpc/grpc-js with the
// protos loaded at run time by @grpc/proto-loader, the google.rpc error details decoded
// with protobufjs. It creates a chain, updates, reads it back, sends an invalid update,
// reports load to an agent and reads the decision, printing one JSON line per step.
//
//   node client.js CONTROL_PLANE AGENT API_KEY CHAIN_ID
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const PROTO_DIR = process.env.CHAINSCALE_PROTO_DIR || path.join(__dirname, '../../../proto');
const GOOGLEAPIS_DIR = '/usr/share/gocode/src/github.com/gogo/googleapis';

// keepCase: snake_case keys, as in the protos and Baseten's JSON (without it, requests
// must use camelCase and snake_case keys are silently dropped). longs: String for int64
// (revision) instead of Long objects; enums: String for ACCEPTED/QUEUED/UNCHANGED instead
// of numbers; defaults: every field present, except proto3 `optional` fields, which stay
// absent when unset (target_in_flight_tokens). No `oneofs: true`: it would add a
// `_min_replica: "min_replica"` key beside every optional field.
const packageDefinition = protoLoader.loadSync(
  ['chainscale/v1/control_plane.proto', 'chainscale/v1/agent.proto'],
  {keepCase: true, longs: String, enums: String, defaults: true, includeDirs: [PROTO_DIR]});
const chainscale = grpc.loadPackageDefinition(packageDefinition).chainscale.v1;

// google.rpc.Status and BadRequest, to read INVALID_ARGUMENT's field violations from the
// grpc-status-details-bin trailer.
const rpc = new protobuf.Root().loadSync(
  [path.join(GOOGLEAPIS_DIR, 'google/rpc/status.proto'),
   path.join(GOOGLEAPIS_DIR, 'google/rpc/error_details.proto')],
  {keepCase: true});

function fieldViolations(error) {
  const Status = rpc.lookupType('google.rpc.Status');
  const BadRequest = rpc.lookupType('google.rpc.BadRequest');
  const violations = [];
  for (const bytes of error.metadata.get('grpc-status-details-bin')) {
    for (const detail of Status.decode(bytes).details) {
      if (detail.type_url === 'type.googleapis.com/google.rpc.BadRequest') {
        violations.push(...BadRequest.toObject(BadRequest.decode(detail.value)).field_violations);
      }
    }
  }
  return violations;
}

function call(client, method, request, metadata) {
  return new Promise((resolve, reject) => {
    client[method](request, metadata, {deadline: Date.now() + 10000},
                   (error, response) => (error ? reject(error) : resolve(response)));
  });
}

async function main() {
  const [controlPlaneAddress, agentAddress, apiKey, chainId] = process.argv.slice(2);
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Api-Key ${apiKey}`);
  const controlPlane = new chainscale.ControlPlane(
    controlPlaneAddress, grpc.credentials.createInsecure());
  const agent = new chainscale.Agent(agentAddress, grpc.credentials.createInsecure());
  const print = (step, value) => console.log(JSON.stringify({step, value}));

  print('create', await call(controlPlane, 'CreateChain',
                             {chain_id: chainId, chainlet_names: ['HelloWorld', 'RandInt']},
                             metadata));
  print('update', await call(controlPlane, 'UpdateChainletEnvironmentAutoscalingSettings', {
    chain_id: chainId, env_name: 'production',
    updates: [{chainlet_name: 'HelloWorld',
               autoscaling_settings: {min_replica: 2, max_replica: 3, scale_down_delay: 63}}],
  }, metadata));
  print('get', await call(controlPlane, 'GetChainEnvironment',
                          {chain_id: chainId, env_name: 'production'}, metadata));
  try {
    await call(controlPlane, 'UpdateChainletEnvironmentAutoscalingSettings', {
      chain_id: chainId, env_name: 'production',
      updates: [{chainlet_name: 'RandInt', autoscaling_settings: {min_replica: 5}}],
    }, metadata);
    print('invalid', 'accepted');
  } catch (error) {
    print('invalid', {code: grpc.status[error.code], details: error.details,
                      field_violations: fieldViolations(error)});
  }
  print('report', await call(agent, 'ReportLoad', {reports: [{
    source_id: 'replica-1', chain_id: chainId, env_name: 'production',
    chainlet_name: 'HelloWorld', in_flight_requests: 5}]}, metadata));
  print('decision', await call(agent, 'GetScalingDecision', {
    chain_id: chainId, env_name: 'production', chainlet_name: 'HelloWorld'}, metadata));
  controlPlane.close();
  agent.close();
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
