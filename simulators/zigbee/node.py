"""A simulated Zigbee node: decodes real ZDO and ZCL frames with zigpy's own types and answers them.

Subclasses describe their endpoints and clusters and handle cluster-specific commands;
this class answers the interview (node, active-endpoint and simple descriptors), binds,
and the ZCL foundation commands (read/write attributes, configure reporting).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import zigpy.types as t
import zigpy.zdo.types as zdo_t
from zigpy.zcl import Cluster, foundation

log = logging.getLogger(__name__)

HA_PROFILE = 0x0104
ZDO_PROFILE = 0x0000
ZDO_ENDPOINT = 0
COORDINATOR_NWK = 0x0000

Reply = Callable[[t.ZigbeePacket], None]


@dataclass(slots=True)
class SimCluster:
    """One cluster on one side (server or client) of a simulated endpoint."""

    cluster: type[Cluster]
    attributes: dict[int, Any] = field(default_factory=dict)

    def read(self, attrid: int) -> foundation.ReadAttributeRecord:
        value = self.attributes.get(attrid)
        definition = self.cluster.attributes.get(attrid)
        if value is None or definition is None:
            return foundation.ReadAttributeRecord(
                t.uint16_t(attrid), foundation.Status.UNSUPPORTED_ATTRIBUTE
            )
        return foundation.ReadAttributeRecord(
            t.uint16_t(attrid), foundation.Status.SUCCESS, typed_value(self.cluster, attrid, value)
        )


def typed_value(cluster: type[Cluster], attrid: int, value: Any) -> foundation.TypeValue:
    definition = cluster.attributes[attrid]
    return foundation.TypeValue(
        type=foundation.DataType.from_python_type(definition.type).type_id,
        value=definition.type(value),
    )


@dataclass(slots=True)
class SimEndpoint:
    endpoint_id: int
    device_type: int
    servers: dict[int, SimCluster]
    clients: dict[int, SimCluster]
    profile: int = HA_PROFILE

    def descriptor(self) -> zdo_t.SizePrefixedSimpleDescriptor:
        return zdo_t.SizePrefixedSimpleDescriptor(
            endpoint=self.endpoint_id,
            profile=self.profile,
            device_type=self.device_type,
            device_version=1,
            input_clusters=sorted(self.servers),
            output_clusters=sorted(self.clients),
        )


class SimNode:
    """A node on the simulated network, addressed by its NWK address."""

    logical_type = zdo_t.LogicalType.EndDevice

    def __init__(self, ieee: t.EUI64, nwk: int, endpoints: list[SimEndpoint]) -> None:
        self.ieee = ieee
        self.nwk = t.NWK(nwk)
        self.endpoints = {ep.endpoint_id: ep for ep in endpoints}
        self._tsn = 0

    def next_tsn(self) -> int:
        self._tsn = (self._tsn + 1) % 256
        return self._tsn

    def node_descriptor(self) -> zdo_t.NodeDescriptor:
        router = self.logical_type != zdo_t.LogicalType.EndDevice
        mac = zdo_t.NodeDescriptor.MACCapabilityFlags.AllocateAddress
        if router:
            mac |= (
                zdo_t.NodeDescriptor.MACCapabilityFlags.FullFunctionDevice
                | zdo_t.NodeDescriptor.MACCapabilityFlags.MainsPowered
                | zdo_t.NodeDescriptor.MACCapabilityFlags.RxOnWhenIdle
            )
        return zdo_t.NodeDescriptor(
            logical_type=self.logical_type,
            complex_descriptor_available=0,
            user_descriptor_available=0,
            reserved=0,
            aps_flags=0,
            frequency_band=zdo_t.NodeDescriptor.FrequencyBand.Freq2400MHz,
            mac_capability_flags=mac,
            manufacturer_code=0x1234,
            maximum_buffer_size=82,
            maximum_incoming_transfer_size=82,
            server_mask=0,
            maximum_outgoing_transfer_size=82,
            descriptor_capability_field=zdo_t.NodeDescriptor.DescriptorCapability.NONE,
        )

    # Frames in

    def receive(self, packet: t.ZigbeePacket, reply: Reply) -> None:
        """Handle one frame addressed to this node; answers go through `reply`."""
        data = packet.data.serialize()
        if packet.dst_ep == ZDO_ENDPOINT:
            self._zdo(packet, data, reply)
            return
        endpoint = self.endpoints.get(int(packet.dst_ep or 0))
        if endpoint is None:
            return
        try:
            header, payload = foundation.ZCLHeader.deserialize(data)
        except ValueError:
            log.debug("undecodable ZCL frame for %s dropped", self.ieee)
            return
        to_server = header.direction == foundation.Direction.Client_to_Server
        clusters = endpoint.servers if to_server else endpoint.clients
        cluster = clusters.get(packet.cluster_id)
        if cluster is None:
            self._default_response(packet, header, foundation.Status.UNSUPPORTED_CLUSTER, reply)
            return
        if header.frame_control.is_general:
            self._general(packet, header, payload, cluster, reply)
        else:
            self.cluster_command(packet, header, payload, cluster, reply)

    def cluster_command(
        self,
        packet: t.ZigbeePacket,
        header: foundation.ZCLHeader,
        payload: bytes,
        cluster: SimCluster,
        reply: Reply,
    ) -> None:
        """Cluster-specific commands; nodes override this for the clusters they implement."""
        self._default_response(packet, header, foundation.Status.UNSUP_CLUSTER_COMMAND, reply)

    # ZDO

    def _zdo(self, packet: t.ZigbeePacket, data: bytes, reply: Reply) -> None:
        if not data or int(packet.cluster_id) not in zdo_t.CLUSTERS:
            return
        command = zdo_t.ZDOCmd(packet.cluster_id)
        tsn = data[0]
        _, schema = zdo_t.CLUSTERS[command]
        try:
            args, _ = t.deserialize(data[1:], schema)
        except (ValueError, KeyError):
            return
        status = zdo_t.Status.SUCCESS
        answer: tuple[zdo_t.ZDOCmd, list[Any]] | None = None
        match command:
            case zdo_t.ZDOCmd.Node_Desc_req:
                answer = (zdo_t.ZDOCmd.Node_Desc_rsp, [status, self.nwk, self.node_descriptor()])
            case zdo_t.ZDOCmd.Active_EP_req:
                answer = (zdo_t.ZDOCmd.Active_EP_rsp, [status, self.nwk, sorted(self.endpoints)])
            case zdo_t.ZDOCmd.Simple_Desc_req:
                endpoint = self.endpoints.get(args[1])
                if endpoint is None:
                    answer = (
                        zdo_t.ZDOCmd.Simple_Desc_rsp,
                        [zdo_t.Status.NOT_ACTIVE, self.nwk, None],
                    )
                else:
                    answer = (
                        zdo_t.ZDOCmd.Simple_Desc_rsp,
                        [status, self.nwk, endpoint.descriptor()],
                    )
            case zdo_t.ZDOCmd.IEEE_addr_req | zdo_t.ZDOCmd.NWK_addr_req:
                response = (
                    zdo_t.ZDOCmd.IEEE_addr_rsp
                    if command == zdo_t.ZDOCmd.IEEE_addr_req
                    else zdo_t.ZDOCmd.NWK_addr_rsp
                )
                answer = (response, [status, self.ieee, self.nwk, 0, 0, []])
            case zdo_t.ZDOCmd.Bind_req:
                answer = (zdo_t.ZDOCmd.Bind_rsp, [status])
            case zdo_t.ZDOCmd.Unbind_req:
                answer = (zdo_t.ZDOCmd.Unbind_rsp, [status])
            case zdo_t.ZDOCmd.Mgmt_Permit_Joining_req:
                answer = (zdo_t.ZDOCmd.Mgmt_Permit_Joining_rsp, [status])
            case _:
                return
        response_id, values = answer
        _, response_schema = zdo_t.CLUSTERS[response_id]
        body = t.uint8_t(tsn).serialize() + t.serialize(values, response_schema)
        reply(self._packet(ZDO_ENDPOINT, ZDO_PROFILE, response_id, body, tsn))

    # ZCL foundation

    def _general(
        self,
        packet: t.ZigbeePacket,
        header: foundation.ZCLHeader,
        payload: bytes,
        cluster: SimCluster,
        reply: Reply,
    ) -> None:
        General = foundation.GeneralCommand
        if header.command_id not in foundation.GENERAL_COMMANDS:
            self._default_response(packet, header, foundation.Status.UNSUP_GENERAL_COMMAND, reply)
            return
        command = General(header.command_id)
        try:
            request: Any
            request, _ = foundation.GENERAL_COMMANDS[command].schema.deserialize(payload)
        except (ValueError, KeyError):
            self._default_response(packet, header, foundation.Status.MALFORMED_COMMAND, reply)
            return
        if command == General.Read_Attributes:
            records = [cluster.read(attrid) for attrid in request.attribute_ids]
            body = b"".join(record.serialize() for record in records)
            self._respond(packet, header, General.Read_Attributes_rsp, body, reply, general=True)
        elif command in (General.Write_Attributes, General.Write_Attributes_Undivided):
            statuses = self.write_attributes(cluster, request.attributes)
            response = foundation.WriteAttributesResponse(
                foundation.WriteAttributesStatusRecord(status=status, attrid=attrid)
                for attrid, status in statuses
            )
            self._respond(
                packet,
                header,
                General.Write_Attributes_rsp,
                response.serialize(),
                reply,
                general=True,
            )
        elif command == General.Configure_Reporting:
            body = foundation.ConfigureReportingResponseRecord(
                status=foundation.Status.SUCCESS
            ).serialize()
            self._respond(
                packet, header, General.Configure_Reporting_rsp, body, reply, general=True
            )
        elif command == General.Default_Response:
            return
        else:
            self._default_response(packet, header, foundation.Status.UNSUP_GENERAL_COMMAND, reply)

    def write_attributes(
        self, cluster: SimCluster, attributes: list[foundation.Attribute]
    ) -> list[tuple[int, foundation.Status]]:
        """Writable attributes are a node's business; by default every write is refused."""
        return [(a.attrid, foundation.Status.READ_ONLY) for a in attributes]

    # Frames out

    def _respond(
        self,
        request: t.ZigbeePacket,
        header: foundation.ZCLHeader,
        command_id: int,
        body: bytes,
        reply: Reply,
        *,
        general: bool = False,
    ) -> None:
        # A reply travels the other way: from a client-side cluster it must say so.
        direction = header.direction.flip()
        make = foundation.ZCLHeader.general if general else foundation.ZCLHeader.cluster
        response = make(tsn=header.tsn, command_id=command_id, direction=direction)
        frame = response.serialize() + body
        reply(
            self._packet(
                int(request.dst_ep or 0), request.profile_id, request.cluster_id, frame, header.tsn
            )
        )

    def _default_response(
        self,
        request: t.ZigbeePacket,
        header: foundation.ZCLHeader,
        status: foundation.Status,
        reply: Reply,
    ) -> None:
        if header.frame_control.disable_default_response and status == foundation.Status.SUCCESS:
            return
        body = t.uint8_t(header.command_id).serialize() + status.serialize()
        self._respond(
            request, header, foundation.GeneralCommand.Default_Response, body, reply, general=True
        )

    def unsolicited(
        self, endpoint_id: int, cluster_id: int, frame: bytes, tsn: int
    ) -> t.ZigbeePacket:
        """A frame this node sends on its own (a report or a notification)."""
        return self._packet(endpoint_id, HA_PROFILE, cluster_id, frame, tsn)

    def announce(self) -> t.ZigbeePacket:
        """Device_annce, as a node sends it when it (re)joins the network."""
        tsn = self.next_tsn()
        _, schema = zdo_t.CLUSTERS[zdo_t.ZDOCmd.Device_annce]
        body = t.uint8_t(tsn).serialize() + t.serialize([self.nwk, self.ieee, 0x80], schema)
        return self._packet(ZDO_ENDPOINT, ZDO_PROFILE, zdo_t.ZDOCmd.Device_annce, body, tsn)

    def _packet(
        self, src_ep: int, profile: int, cluster_id: int, frame: bytes, tsn: int
    ) -> t.ZigbeePacket:
        return t.ZigbeePacket(
            src=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=self.nwk),
            src_ep=t.uint8_t(src_ep),
            dst=t.AddrModeAddress(addr_mode=t.AddrMode.NWK, address=t.NWK(COORDINATOR_NWK)),
            dst_ep=t.uint8_t(1 if src_ep else ZDO_ENDPOINT),
            tsn=t.uint8_t(tsn),
            profile_id=t.uint16_t(profile),
            cluster_id=t.uint16_t(cluster_id),
            data=t.SerializableBytes(frame),
            lqi=t.uint8_t(200),
            rssi=t.int8s(-50),
        )
