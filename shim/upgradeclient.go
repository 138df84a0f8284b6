package shim

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The client side of the Shim service, for the `upgrade` command.

// RequestUpgrade asks the shim at address to become binary. The answer comes
// before the switch; AwaitUpgrade tells how it ended.
func RequestUpgrade(ctx context.Context, address, binary string) (*UpgradeAnswer, error) {
	var answer UpgradeAnswer
	return &answer, callShim(ctx, address, upgradeMethod, UpgradeRequest{Binary: binary}, &answer)
}

// AwaitUpgrade waits until the shim at address knows how upgrade attempt
// ended, and returns what the shim then is. Asked during the switch, the
// question waits in the socket, and the shim that serves after it answers.
func AwaitUpgrade(ctx context.Context, address string, attempt int) (*ShimStatus, error) {
	var status ShimStatus
	return &status, callShim(ctx, address, statusMethod, StatusRequest{WaitFor: attempt}, &status)
}

func callShim(ctx context.Context, address, method string, req, resp any) error {
	conn, err := dialShim(address)
	if err != nil {
		return err
	}
	client := ttrpc.NewClient(conn)
	defer client.Close()
	data, err := json.Marshal(req)
	if err != nil {
		return err
	}
	var answer wrapperspb.StringValue
	if err := client.Call(ctx, shimServiceName, method, wrapperspb.String(string(data)), &answer); err != nil {
		return errgrpc.ToNative(err)
	}
	if err := json.Unmarshal([]byte(answer.GetValue()), resp); err != nil {
		return fmt.Errorf("decode the shim's answer: %w", err)
	}
	return nil
}
