"""The agent's gRPC contract: ``agent.proto`` and the Python modules generated from it.

``agent_pb2.py`` and ``agent_pb2_grpc.py`` are GENERATED: do not edit them by
hand (ruff skips them). After changing ``agent.proto`` run
``python -m edgekit.agent.protos.generate`` (needs grpcio-tools, in the dev
extra); the tests run ``generate --check`` to prove the committed modules
match the .proto. Import them as ``from edgekit.agent import agent_pb2,
agent_pb2_grpc`` or from this package.

Must not import: any other edgekit module (the generated code imports only
protobuf and grpc; generate.py only edgekit.errors).
"""
