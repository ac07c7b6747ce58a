"""Export a file to Amazon S3 with stream manager, as in the AWS developer guide.

Creates an export stream with an S3 task executor and a status stream, writes a file,
appends an S3ExportTaskDefinition for it, then reads the status stream until the task
succeeded or failed.
"""

import contextlib
import logging
import os
import sys
import time

from stream_manager import (
    ExportDefinition,
    MessageStreamDefinition,
    ReadMessagesOptions,
    ResourceNotFoundException,
    S3ExportTaskDefinition,
    S3ExportTaskExecutorConfig,
    Status,
    StatusConfig,
    StatusLevel,
    StatusMessage,
    StrategyOnFull,
    StreamManagerClient,
    StreamManagerException,
    Util,
)

logging.basicConfig(level=logging.INFO)
logger = logging.getLogger(__name__)

bucket_name, object_key = sys.argv[1], sys.argv[2]
stream_name = "SomeStream"
status_stream_name = "SomeStatusStreamName"

client = StreamManagerClient()
try:
    # Start from clean streams (the names may exist from an earlier run).
    for name in (stream_name, status_stream_name):
        with contextlib.suppress(ResourceNotFoundException):
            client.delete_message_stream(stream_name=name)

    # The status stream: stream manager appends the status of each export task to it.
    client.create_message_stream(
        MessageStreamDefinition(
            name=status_stream_name, strategy_on_full=StrategyOnFull.OverwriteOldestData
        )
    )
    # The export stream: each message is an S3ExportTaskDefinition.
    client.create_message_stream(
        MessageStreamDefinition(
            name=stream_name,
            strategy_on_full=StrategyOnFull.OverwriteOldestData,
            export_definition=ExportDefinition(
                s3_task_executor=[
                    S3ExportTaskExecutorConfig(
                        identifier="S3TaskExecutor" + stream_name,
                        status_config=StatusConfig(
                            status_level=StatusLevel.INFO,
                            status_stream_name=status_stream_name,
                        ),
                    )
                ]
            ),
        )
    )

    file_path = os.path.join(os.getcwd(), "data.txt")
    with open(file_path, "w") as f:
        f.write("hello from stream manager\n")

    s3_export_task_definition = S3ExportTaskDefinition(
        input_url="file://" + file_path, bucket=bucket_name, key=object_key
    )
    payload = Util.validate_and_serialize_to_json_bytes(s3_export_task_definition)
    sequence_number = client.append_message(stream_name, payload)
    logger.info(
        "Appended the export task for s3://%s/%s as message %d",
        bucket_name,
        object_key,
        sequence_number,
    )

    # Read the statuses from the status stream until the task succeeded or failed.
    stop_checking = False
    next_seq = 0
    deadline = time.time() + 60
    while not stop_checking and time.time() < deadline:
        try:
            messages_list = client.read_messages(
                status_stream_name,
                ReadMessagesOptions(
                    desired_start_sequence_number=next_seq,
                    min_message_count=1,
                    max_message_count=5,
                    read_timeout_millis=1000,
                ),
            )
            for message in messages_list:
                status_message = Util.deserialize_json_bytes_to_obj(message.payload, StatusMessage)
                if status_message.status == Status.Success:
                    logger.info("Successfully uploaded file at path %s to S3.", file_path)
                    print("EXPORT-STATUS Success", flush=True)
                    stop_checking = True
                elif status_message.status == Status.InProgress:
                    logger.info("File upload is in Progress.")
                    next_seq = message.sequence_number + 1
                elif status_message.status in (Status.Failure, Status.Canceled):
                    logger.error(
                        "Unable to upload file at path %s to S3. Message: %s",
                        file_path,
                        status_message.message,
                    )
                    print("EXPORT-STATUS Failure " + str(status_message.message), flush=True)
                    stop_checking = True
        except StreamManagerException:
            logger.exception("Exception while reading the status stream")
    sys.exit(0 if stop_checking else 1)
finally:
    client.close()
