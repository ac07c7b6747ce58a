"""Local emulator of the AWS IoT Greengrass v2 control plane.

It answers boto3's own ``greengrassv2`` client (components, deployments, core
devices, tags) on loopback, reads artifacts from the local moto S3, and offers
the private ``/_edgekit`` device API the local device runtime polls. Layout
follows moto: ``models`` (state + logic), ``responses`` (REST-JSON),
``urls`` (routes), ``server`` (HTTP).
"""
