"""An inference component as written for SageMaker Edge Manager on Greengrass.

Reads the agent's socket from the aws.greengrass.SageMakerEdgeManager component's
configuration (UnixSocketName), loads the model folder, predicts on a fixed input,
captures the inference and waits for the capture to be uploaded.
"""

import json
import sys
import time
import uuid

import agent_pb2
import agent_pb2_grpc
import grpc
import numpy as np
from awsiot.greengrasscoreipc.clientv2 import GreengrassCoreIPCClientV2

model_url, model_name = sys.argv[1], sys.argv[2]

ipc = GreengrassCoreIPCClientV2()
config = ipc.get_configuration(
    component_name="aws.greengrass.SageMakerEdgeManager", key_path=["UnixSocketName"]
)
socket_name = config.value["UnixSocketName"]
print("agent socket:", socket_name, flush=True)

channel = grpc.insecure_channel("unix://" + socket_name)
grpc.channel_ready_future(channel).result(timeout=60)
agent = agent_pb2_grpc.AgentStub(channel)

response = agent.LoadModel(agent_pb2.LoadModelRequest(url=model_url, name=model_name))
inputs = response.model.input_tensor_metadatas
print("loaded", response.model.name, "inputs", [(t.name, list(t.shape)) for t in inputs])

meta = inputs[0]
shape = list(meta.shape)
data = np.arange(int(np.prod(shape)), dtype=np.float32).reshape(shape)
tensor = agent_pb2.Tensor(
    tensor_metadata=agent_pb2.TensorMetadata(
        name=meta.name, data_type=agent_pb2.FLOAT32, shape=shape
    ),
    byte_data=data.tobytes(),
)
result = agent.Predict(agent_pb2.PredictRequest(name=model_name, tensors=[tensor]))
out = result.tensors[0]
values = np.frombuffer(out.byte_data, dtype=np.float32).tolist()
print("PREDICTION " + json.dumps({"name": out.tensor_metadata.name, "values": values}), flush=True)

capture_id = str(uuid.uuid4())
agent.CaptureData(
    agent_pb2.CaptureDataRequest(
        model_name=model_name,
        capture_id=capture_id,
        input_tensors=[tensor],
        output_tensors=[out],
    )
)
status = "IN_PROGRESS"
for _ in range(600):
    reply = agent.GetCaptureDataStatus(agent_pb2.GetCaptureDataStatusRequest(capture_id=capture_id))
    status = agent_pb2.CaptureDataStatus.Name(reply.status)
    if status != "IN_PROGRESS":
        break
    time.sleep(0.1)
print("CAPTURE " + json.dumps({"capture_id": capture_id, "status": status}), flush=True)
