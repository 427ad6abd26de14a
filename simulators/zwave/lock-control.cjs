// The control side of the simulated locks: what a person does at the door, over a
// loopback channel (newline-delimited JSON) that the harness (simulators/zwave/control.py)
// talks to. Loaded by mock-locks.cjs with the mock's helpers in `ctx`.
"use strict";

const net = require("node:net");
const fs = require("node:fs");

module.exports.openControlChannel = function openControlChannelWith(ctx, controller, mockNodes) {
	const { cc, specs, send, operationReport, accessControl, findSlot, keys } = ctx;
	const { USER, DOOR_MODE, OFFLINE, LOSE, FRAMES, HOME_SECURITY } = keys;

	function schedulesOf(node, userId, spec) {
		const weekDay = [];
		const yearDay = [];
		for (let slotId = 1; slotId <= (spec.week_day_slots || 0); slotId++) {
			const entry = node.state.get(`ScheduleEntryLock_schedule_${userId}_${slotId}_0`);
			if (entry) weekDay.push(entry);
		}
		for (let slotId = 1; slotId <= (spec.year_day_slots || 0); slotId++) {
			const entry = node.state.get(`ScheduleEntryLock_schedule_${userId}_${slotId}_1`);
			if (entry) yearDay.push(entry);
		}
		return { week_day: weekDay, year_day: yearDay };
	}

	function trueSlots(node, spec) {
		const slots = [];
		for (let id = 1; id <= spec.slots; id++) {
			const status = node.state.get(USER.status(id));
			if (status !== cc.UserIDStatus.Enabled && status !== cc.UserIDStatus.Disabled) continue;
			const schedules = schedulesOf(node, id, spec);
			let userType = "unrestricted";
			if (schedules.year_day.length) userType = "year_day_schedule_user";
			else if (schedules.week_day.length) userType = "week_day_schedule_user";
			slots.push({
				slot: id,
				status: status === cc.UserIDStatus.Enabled ? "enabled" : "disabled",
				user_type: userType,
				code: String(node.state.get(USER.code(id))),
				schedules,
			});
		}
		return slots;
	}

	async function perform(controller, mockNodes, request) {
		if (request.action === "guard") {
			return { guard: globalThis.__lockbridgeLoopbackGuard ?? null };
		}
		const index = specs.findIndex((s) => s.id === request.node);
		const node = mockNodes.find((n) => n.id === request.node);
		if (index === -1 || !node) throw new Error(`no simulated node ${request.node}`);
		const spec = specs[index];
		const reportState = () => send(node, operationReport(controller, node));
		switch (request.action) {
			case "keypad": {
				const slot = findSlot(node, spec, request.pin);
				const enabled =
					slot !== undefined &&
					node.state.get(USER.status(slot)) === cc.UserIDStatus.Enabled;
				if (!enabled) {
					await send(node, accessControl(controller, 0x13));
					return { accepted: false };
				}
				node.state.set(DOOR_MODE, cc.DoorLockMode.Unsecured);
				await send(node, accessControl(controller, 0x06, slot));
				await reportState();
				return { accepted: true, slot };
			}
			case "manual": {
				node.state.set(
					DOOR_MODE,
					request.lock ? cc.DoorLockMode.Secured : cc.DoorLockMode.Unsecured,
				);
				await send(node, accessControl(controller, request.lock ? 0x01 : 0x02));
				await reportState();
				return {};
			}
			case "jam": {
				await send(node, accessControl(controller, 0x0b));
				return {};
			}
			case "tamper": {
				await send(
					node,
					new cc.NotificationCCReport({
						nodeId: controller.ownNodeId,
						notificationType: HOME_SECURITY,
						notificationEvent: 0x03,
					}),
				);
				return {};
			}
			case "door": {
				node.state.set("lockbridge_door", request.open ? "open" : "closed");
				await send(node, accessControl(controller, request.open ? 0x16 : 0x17));
				await reportState();
				return {};
			}
			case "battery": {
				node.state.set("lockbridge_battery", request.level);
				await send(
					node,
					new cc.BatteryCCReport({ nodeId: controller.ownNodeId, level: request.level }),
				);
				return {};
			}
			case "online": {
				node.state.set(OFFLINE, !request.online);
				node.autoAckControllerFrames = !!request.online;
				if (request.online) await reportState(); // a frame from a dead node revives it
				return {};
			}
			case "add_code": {
				if (request.slot < 1 || request.slot > spec.slots) {
					throw new Error(`slot ${request.slot}: the lock has no such slot`);
				}
				if (findSlot(node, spec, request.pin, request.slot) !== undefined) {
					await send(node, accessControl(controller, 0x0f, request.slot));
					throw new Error(`slot ${request.slot}: the lock already has this code`);
				}
				node.state.set(USER.status(request.slot), cc.UserIDStatus.Enabled);
				node.state.set(USER.code(request.slot), request.pin);
				await send(node, accessControl(controller, 0x0e, request.slot));
				return {};
			}
			case "lose": {
				node.state.set(LOSE, request.count);
				return {};
			}
			case "reset": {
				// A fresh lock for the next test: no codes or schedules, locked, door closed.
				for (const key of [...node.state.keys()]) {
					if (key.startsWith("UserCode_") || key.startsWith("ScheduleEntryLock_schedule_")) {
						node.state.delete(key);
					}
				}
				for (const [slot, pin] of Object.entries(spec.codes ?? {})) {
					node.state.set(USER.status(Number(slot)), cc.UserIDStatus.Enabled);
					node.state.set(USER.code(Number(slot)), pin);
				}
				node.state.set(DOOR_MODE, cc.DoorLockMode.Secured);
				node.state.set("lockbridge_door", "closed");
				node.state.set("lockbridge_battery", spec.battery ?? 90);
				node.state.set(OFFLINE, false);
				node.state.set(LOSE, 0);
				node.autoAckControllerFrames = true;
				await reportState();
				await send(node, new cc.BatteryCCReport({ nodeId: controller.ownNodeId, level: spec.battery ?? 90 }));
				return {};
			}
			case "slots":
				return { slots: trueSlots(node, spec) };
			case "frames":
				return { frames: node.state.get(FRAMES) ?? 0 };
			default:
				throw new Error(`unknown action ${request.action}`);
		}
	}

	function openControlChannel(controller, mockNodes) {
		const server = net.createServer((socket) => {
			let buffer = "";
			socket.setEncoding("utf8");
			socket.on("data", (chunk) => {
				buffer += chunk;
				let newline = buffer.indexOf("\n");
				while (newline !== -1) {
					const line = buffer.slice(0, newline);
					buffer = buffer.slice(newline + 1);
					newline = buffer.indexOf("\n");
					let request;
					try {
						request = JSON.parse(line);
					} catch {
						socket.write(`${JSON.stringify({ ok: false, error: "invalid JSON" })}\n`);
						continue;
					}
					perform(controller, mockNodes, request).then(
						(result) => socket.write(`${JSON.stringify({ id: request.id, ok: true, result })}\n`),
						(err) => socket.write(`${JSON.stringify({ id: request.id, ok: false, error: String(err.message ?? err) })}\n`),
					);
				}
			});
			socket.on("error", () => socket.destroy());
		});
		server.listen({ host: "127.0.0.1", port: 0 }, () => {
			const file = process.env.LOCKBRIDGE_ZWAVE_CONTROL_FILE;
			const { port } = server.address();
			if (file) fs.writeFileSync(file, String(port));
			console.log(`lockbridge control channel on tcp://127.0.0.1:${port}`);
		});
		server.unref();
	}

	openControlChannel(controller, mockNodes);
};
